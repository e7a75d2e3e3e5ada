"""The Python API: ``geoproc.run`` for scripts and notebooks, ``geoproc.submit`` for background runs."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .engine import Driver
from .errors import GeoprocError, InvalidParams, InvalidSetting, JobDefinitionError, JobFailed, JobNotFound
from .jobs import ALL_HANDLERS, get_job
from .jobs.write import handlers_for_array, write_params
from .ledger import JobRecord, Ledger, open_ledger
from .model import JobType
from .raster.open import open_items, open_many, open_one, reproject
from .raster.regions import REGION_BYTES
from .settings import MAX_WORKERS, Settings, check_cluster
from .spec import load_spec, resolve
from .stac.pgstac import resolve_dsn
from .stac.reading import read_items, search_items
from .status import RETRYABLE, JobStatus, TaskStatus
from .storage import open_fs, resolve_storage_options
from .storage.listing import is_directory, list_files
from .storage.urls import canonical

__all__ = ["JobHandle", "JobResult", "StageSummary", "job_summary", "load_spec", "resolve", "retry", "run",
           "status", "submit"]

log = logging.getLogger(__name__)


#: task statuses in the order per-stage tables show them
STAGE_COLUMNS = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.PENDING,
                 TaskStatus.CANCELLED)


@dataclass
class StageSummary:
    name: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def completed(self) -> int:
        return self.counts.get(TaskStatus.COMPLETED, 0)


@dataclass
class JobResult:
    """What a job run returns: identity, status, per-stage task counts, result and timings."""

    job_id: str
    job_type: str
    status: str
    result: Any
    error: str | None
    stages: list[StageSummary]
    duration: float | None
    created_at: float
    cached: bool = False
    executed: int = 0
    wall_time: float = 0.0
    dashboard: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == JobStatus.COMPLETED

    @property
    def progress(self) -> float:
        total = sum(s.total for s in self.stages)
        return 100.0 * sum(s.completed for s in self.stages) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "job_type": self.job_type, "status": self.status, "result": self.result,
                "error": self.error, "stages": [{"name": s.name, "counts": s.counts} for s in self.stages],
                "duration": self.duration, "cached": self.cached, "executed": self.executed,
                "progress": round(self.progress, 1), "params": self.params, "metrics": self.metrics}

    def __rich__(self) -> Any:
        """Per-stage task counts as a rich table (what :meth:`JobHandle.progress` shows)."""
        from rich.table import Table  # rich is loaded only by those who display something

        t = Table(title=f"{self.job_type} {self.job_id[:12]} — {self.status} ({self.progress:.0f}%)")
        for col in ("stage", "tasks", *STAGE_COLUMNS):
            t.add_column(col, justify="left" if col == "stage" else "right")
        for s in self.stages:
            t.add_row(s.name, str(s.total), *(str(s.counts.get(k, 0)) for k in STAGE_COLUMNS))
        return t

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{s.name}</td><td>{s.completed}/{s.total}</td><td>{s.counts}</td></tr>"
                       for s in self.stages)
        return (f"<b>{self.job_type}</b> <code>{self.job_id[:12]}</code> — <b>{self.status}</b>"
                f"<table><tr><th>stage</th><th>done</th><th>tasks</th></tr>{rows}</table>")


def job_summary(ledger: Ledger, job: JobRecord, *, with_metrics: bool = False, **extra: Any) -> JobResult:
    """A :class:`JobResult` built from the ledger (``with_metrics`` reads every task row once)."""
    jt = get_job(job.job_type)
    counts = ledger.counts(job.job_id)
    stages = [StageSummary(st.name, counts.get(i, {})) for i, st in enumerate(jt.stages)]
    if with_metrics:
        per_stage = ledger.metrics(job.job_id)
        extra["metrics"] = {jt.stages[i].name: m for i, m in sorted(per_stage.items()) if i < len(jt.stages)}
    status, error = job.status, job.error
    if job.driver_gone(Settings().lease_ttl):
        status, error = JobStatus.INTERRUPTED, "interrupted (driver gone): its driver stopped without recording an " \
                                              "end; run the job again to resume"
    return JobResult(job_id=job.job_id, job_type=job.job_type, status=status, result=job.result,
                     error=error, stages=stages, duration=job.duration, created_at=job.created_at,
                     params=job.params, **extra)


def handlers_for(jt: JobType) -> dict[str, Any]:
    """The handler function of each of the job's stages, from the registry (handed to the engine)."""
    missing = sorted({st.handler for st in jt.stages} - set(ALL_HANDLERS))
    if missing:
        raise JobDefinitionError(f"Job type {jt.name!r} names handlers {', '.join(missing)} that are not in "
                                 "geoproc.jobs.ALL_HANDLERS; register them there.")
    return {st.handler: ALL_HANDLERS[st.handler] for st in jt.stages}


def check_run_options(cluster: Any, workers: int | None) -> None:
    """Refuse a cluster or worker count geoproc cannot use before anything is recorded or started."""
    if isinstance(cluster, str):
        check_cluster(cluster)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS):
        raise InvalidSetting(f"workers={workers!r}: the number of local worker processes must be 1 to {MAX_WORKERS}")


def run(job: str, *, cluster: Any = None, workers: int | None = None, ledger: str | Ledger | None = None,
        force: bool = False, verify: bool = False, wait: bool = True,
        on_event: Callable[[str, dict], None] | None = None, settings: Settings | None = None,
        _keep_failed: bool = False, **params: Any) -> JobResult:
    """Run a job to completion and return its :class:`JobResult`.

    ``job`` is a registered job type (``"hello_world"``) or a spec file path. Submitting a finished job
    returns its stored result without computing anything; an unfinished one resumes. Outputs of
    completed tasks are checked first (present, same size; ``verify`` also re-hashes them), and a task
    whose output is gone or changed runs again.
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_run_options(cluster, workers)
    name, raw = resolve(job, params)
    jt = get_job(name)
    model = jt.validate(raw)
    return _drive(jt, model, handlers_for(jt), t0=t0, settings=settings, cluster=cluster, workers=workers,
                  ledger=ledger, force=force, verify=verify, wait=wait, on_event=on_event, keep_failed=_keep_failed)


def _drive(jt: JobType, model: Any, handlers: dict[str, Any], *, t0: float, settings: Settings, cluster: Any,
           workers: int | None, ledger: str | Ledger | None, force: bool, verify: bool, wait: bool,
           on_event: Callable[[str, dict], None] | None, keep_failed: bool = False) -> JobResult:
    """Run a validated job with the given handlers and summarise it from the ledger."""
    own = not isinstance(ledger, Ledger)
    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger or settings.ledger, settings)
    dashboard: dict[str, Any] = {}

    def sink(kind: str, data: dict) -> None:
        if kind == "cluster":
            dashboard["link"] = data.get("dashboard")
        if on_event:
            on_event(kind, data)

    try:
        driver = Driver(jt, model, led, handlers=handlers, settings=settings, cluster=cluster,
                        workers=workers, force=force, verify=verify, wait=wait, on_event=sink,
                        keep_failed=keep_failed)
        record, cached = driver.run()
        return job_summary(led, record, cached=cached, executed=driver.executed,
                           wall_time=time.perf_counter() - t0, dashboard=dashboard.get("link"))
    finally:
        if own:
            led.close()


def open(source: str | list[str], *, crs: Any = None, resolution: float | None = None,
         bounds: tuple[float, float, float, float] | None = None, chunks: int | tuple[int, int] | None = None,
         bands: list[int | str] | None = None, resampling: str = "nearest", masked: bool = False,
         suffixes: tuple[str, ...] = (".tif", ".tiff"), collections: list[str] | None = None,
         bbox: tuple[float, float, float, float] | None = None, datetime: str | None = None) -> Any:
    """Open rasters lazily as xarray.

    One raster URL gives a ``DataArray`` with dims ``(band, y, x)``; a list of URLs, or a directory /
    container / prefix (its files ending in ``suffixes``), gives ``(time, band, y, x)`` on one grid.
    The grid is given by ``crs`` / ``resolution`` / ``bounds`` (bounds in the output CRS), each
    defaulting to the first raster's CRS and resolution and the union of the inputs' extents; rasters
    not on it are reprojected on load (odc-geo, ``resampling``). On one raster, any of the three
    reprojects it.

    STAC gives ``(time, band, y, x)`` too, loaded by odc-stac: a static catalog, a collection or an
    ItemCollection file (``.json``), or a pgstac search: ``source`` is the database's DSN (or
    ``"pgstac"`` for ``GEOPROC_PGSTAC_DSN``) and ``collections`` / ``bbox`` (lon/lat) / ``datetime``
    select the items.

    Reads go through geoproc's storage layer (``az://`` with the credential chain of ``geoproc run``).
    Chunks hold whole blocks of the files; the band coordinate holds the band names (descriptions,
    else ``b1``...); ``.rio`` and ``.odc`` work. Dask names are tokens of the files and of how they
    were opened, so a computation built on them has the same identity in every session, and
    :func:`write` of it resumes instead of starting over.
    """
    so = resolve_storage_options()
    grid = {"crs": crs, "resolution": resolution, "bounds": bounds}
    if isinstance(source, str) and (source == "pgstac" or source.startswith(("postgresql://", "postgres://"))):
        items = search_items(resolve_dsn("env" if source == "pgstac" else source), collections=collections,
                             bbox=bbox, datetime=datetime)
        return open_items(items, chunks=chunks, bands=bands, resampling=resampling, **grid)
    if isinstance(source, str) and source.lower().endswith((".json", ".geojson")):
        return open_items(read_items(source, so), chunks=chunks, bands=bands, resampling=resampling, **grid)
    kw = {"chunks": chunks, "bands": bands, "masked": masked, "storage_options": so}
    if isinstance(source, (list, tuple)):
        return open_many([canonical(u) for u in source], crs=crs, resolution=resolution, bounds=bounds,
                         resampling=resampling, **kw)
    if not isinstance(source, str):
        raise InvalidSetting(f"geoproc.open takes a raster URL, a list of them or a directory, not "
                             f"{type(source).__name__}")
    url = canonical(source)
    if not url.lower().endswith(tuple(s.lower() for s in suffixes)) and is_directory(url, so):
        files, _ = list_files(url, so, suffixes=suffixes)
        return open_many([f.url for f in files], crs=crs, resolution=resolution, bounds=bounds,
                         resampling=resampling, **kw)
    one = open_one(url, **kw)
    if crs is None and resolution is None and bounds is None:
        return one
    return reproject(one, crs=crs, resolution=resolution, bounds=bounds, resampling=resampling)


def write_job(obj: Any, output: str, **options: Any) -> tuple[JobType, Any, Any]:
    """The ``write`` job of ``obj`` (type, validated params) and the array it computes (see :func:`write`)."""
    model, arr = write_params(obj, output, **options)
    return get_job("write"), model, arr


def write(obj: Any, output: str, *, format: str = "zarr", name: str = "data",
          chunks: tuple[int, int] | None = None, region_bytes: int | str = REGION_BYTES, overwrite: bool = False,
          memory_limit: int | str = "256MB", cluster: Any = None, workers: int | None = None,
          ledger: str | Ledger | None = None, force: bool = False, wait: bool = True,
          on_event: Callable[[str, dict], None] | None = None, settings: Settings | None = None,
          **options: Any) -> JobResult:
    """Write a lazy xarray computation to ``output``, one ledger task per region of whole chunks.

    ``format`` is ``"zarr"`` (a Zarr v3 store), ``"cog"`` (one COG at the ``.tif`` URL ``output``,
    assembled with overviews in bounded memory) or ``"tiles"`` (one COG per region and a VRT under the
    directory ``output``). ``options`` are further parameters of the ``write`` job (``tier``,
    ``overview_resampling``, ``gdal_threads``; see ``geoproc list write``).

    The job is named by the computation's Dask token plus the output and its options: the same cell
    run twice computes nothing the second time; after a crash only the regions not yet written run.
    ``chunks`` is the Zarr chunk edge ``(y, x)`` (default: the array's own chunks); a region holds
    about ``region_bytes`` of output. An array held in memory (not Dask) larger than ``memory_limit``
    is refused with the advice to chunk it.
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_run_options(cluster, workers)
    jt, model, arr = write_job(obj, output, format=format, name=name, chunks=chunks, region_bytes=region_bytes,
                               overwrite=overwrite, memory_limit=memory_limit, **options)
    return _drive(jt, model, handlers_for_array(arr), t0=t0, settings=settings, cluster=cluster, workers=workers,
                  ledger=ledger, force=force, verify=False, wait=wait, on_event=on_event)


def process(what: str | Callable[..., Any], output: str, *, input: str | None = None,
            inputs: dict[str, str] | None = None, **options: Any) -> JobResult:
    """Run the ``process`` job over ``input`` (bands ``b1..bN`` and their descriptions) or ``inputs``
    (name -> URL), written to ``output`` (``format`` cog, zarr or tiles).

    ``what`` is band math (``"(b4 - b3) / (b4 + b3)"``) or a function: a callable defined in an
    importable module, or its spec ``"module:callable"`` / ``"path/to/file.py:callable"``. The function
    is imported on the workers and called on each region with ``halo`` pixels of context.

    The same job as ``geoproc run process --set ...``; ``options`` are its parameters (``halo``,
    ``format``, ``dtype``, ``nodata``, ``crs``, ``resolution``, ``bounds``, ``tier``, ...) and
    :func:`run`'s (``cluster``, ``ledger``, ...).
    """
    source = {"input": input} if inputs is None else {"inputs": inputs}
    return run("process", output=output, **_process_source(what), **source, **options)


def _process_source(what: str | Callable[..., Any]) -> dict[str, str]:
    """``expr=`` or ``function=`` for :func:`process`'s first argument."""
    if callable(what):
        module, name = getattr(what, "__module__", None), getattr(what, "__qualname__", "")
        if not module or module == "__main__" or not name.isidentifier():
            raise InvalidParams("process", [f"{what!r} cannot be imported by the workers (it is defined in "
                                            f"{module or 'no module'}); put it in a module or a .py file and pass "
                                            "'module:callable' or 'path/to/file.py:callable'."])
        return {"function": f"{module}:{name}"}
    if re.fullmatch(r"[\w./~-]+:[A-Za-z_]\w*", what.strip()):
        return {"function": what}
    return {"expr": what}


def zonal_stats(input: str, zones: str | None = None, *, output: str | None = None, cluster: Any = None,
                workers: int | None = None, ledger: str | Ledger | None = None,
                settings: Settings | None = None, **options: Any) -> Any:
    """Statistics of ``input`` over ``zones`` (or ``grid=``, ``h3_resolution=``) as a pandas DataFrame, or
    a GeoDataFrame with ``geometry=True``: the ``zonal_stats`` job, run and read back.

    ``options`` are the job's parameters (``zone_id``, ``stats``, ``coverage``, ``zones_crs``, ``batch``,
    ...; ``geoproc list zonal_stats``). The table is written to ``output`` (.parquet or .csv); without
    one, to a file under the geoproc data directory named by the request, so that calling again with
    the same arguments computes nothing and reads the table back. A job that does not complete raises
    :class:`~geoproc.errors.JobFailed` with its result (failed zones batches, codes, remediations).
    """
    import hashlib
    import json
    import os

    settings = settings or Settings()
    if output is None:
        request = {"input": canonical(input), "zones": zones and canonical(zones), **options}
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:24]
        base = settings.data_home or os.path.join(os.path.expanduser("~"), ".local", "share")
        output = os.path.join(base, "geoproc", "zonal_stats", f"{digest}.parquet")
    res = run("zonal_stats", input=input, zones=zones, output=output, cluster=cluster, workers=workers,
              ledger=ledger, settings=settings, **options)
    if res.status != "completed":
        first = next(iter((res.result or {}).get("failed_tasks") or []), None)
        why = f" {first['code']}: {first['message']} ({first['remediation']})" if first else ""
        raise JobFailed(f"zonal_stats {res.job_id[:12]} {res.status}: {res.error}.{why}", res)
    return read_table(output, geometry=bool(options.get("geometry")))


def read_table(url: str, *, geometry: bool = False) -> Any:
    """A table geoproc wrote (Parquet, GeoParquet or CSV) as a pandas or GeoPandas frame."""
    import pandas as pd

    so = resolve_storage_options()
    fs, path = open_fs(canonical(url), so)
    with fs.open(path, "rb") as f:
        if url.lower().endswith(".csv"):
            return pd.read_csv(f)
        if geometry:
            import geopandas as gpd

            return gpd.read_parquet(f)
        return pd.read_parquet(f)


class JobHandle:
    """A job running in a background thread (for notebooks); poll it or wait for it."""

    def __init__(self, job: str, **kwargs: Any):
        self._events: list[tuple[str, dict]] = []
        self._result: JobResult | None = None
        self._error: BaseException | None = None
        self._ledger_url = kwargs.get("ledger")
        self.job_id: str | None = None
        user_sink = kwargs.pop("on_event", None)

        def sink(kind: str, data: dict) -> None:
            if "job_id" in data:
                self.job_id = data["job_id"]
            self._events.append((kind, data))
            if user_sink:
                user_sink(kind, data)

        def target() -> None:
            try:
                self._result = run(job, on_event=sink, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised from result()
                self._error = exc

        self._thread = threading.Thread(target=target, name="geoproc-job", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float | None = None) -> JobResult:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the job is still running")
        if self._error is not None:
            raise self._error
        if self._result is None:  # the thread ended without a result or an error: cannot happen
            raise GeoprocError(f"the background run of job {self.job_id or '?'} ended without a result")
        return self._result

    def status(self) -> JobResult | None:
        """The job's current state from the ledger (None before it is registered)."""
        if self.job_id is None:
            return None
        led = open_ledger(self._ledger_url)
        try:
            job = led.get_job(self.job_id)
            return job_summary(led, job) if job else None
        finally:
            led.close()

    def _repr_html_(self) -> str:
        st = self.status()
        return st._repr_html_() if st else "<i>starting…</i>"

    def progress(self, interval: float = 0.5, view: Callable[[JobResult], Any] | None = None) -> JobResult:
        """Show a live progress display in a notebook (or terminal) until the job ends.

        ``view`` turns a :class:`JobResult` into what rich shows; by default the result's own per-stage
        table (:meth:`JobResult.__rich__`).
        """
        from rich.live import Live  # rich is loaded only by those who display something

        show = view or (lambda res: res)
        with Live(refresh_per_second=4) as live:
            while not self.done():
                st = self.status()
                if st is not None:
                    live.update(show(st))
                time.sleep(interval)
            res = self.result()
            live.update(show(res))
        return res


def submit(job: str, **kwargs: Any) -> JobHandle:
    """Start a job in the background and return a :class:`JobHandle` right away."""
    return JobHandle(job, **kwargs)


def retry(job_id: str, *, task_ids: list[str] | None = None, ledger: str | None = None,
          settings: Settings | None = None, **kwargs: Any) -> JobResult:
    """Re-run a job's failed, skipped and cancelled tasks (or only ``task_ids``), e.g. after fixing inputs.

    Attempt counts and the failure events of earlier attempts are kept; the job is run again with
    the parameters stored in the ledger.
    """
    settings = settings or Settings()
    led = open_ledger(ledger or settings.ledger, settings)
    try:
        job = led.find_job(job_id)
        ids_ = None
        if task_ids:
            known = {t["task_id"] for t in led.list_tasks(job.job_id, limit=None)}
            ids_ = [t if t in known else next((k for k in known if k.endswith("-" + t)), t) for t in task_ids]
            unknown = [t for t in ids_ if t not in known]
            if unknown:
                raise JobNotFound(f"No task {unknown[0]!r} in job {job.job_id[:12]}; list them with "
                                  f"`geoproc tasks {job.job_id[:12]}`.")
        n = led.reset_tasks(job.job_id, statuses=RETRYABLE, task_ids=ids_)
        led.update_job(job.job_id, status=JobStatus.PENDING)
        led.event(job.job_id, "retry_requested", message=f"{n} tasks reset to pending")
        log.info("Job %s: %d tasks reset to pending for a retry", job.job_id[:12], n)
        return run(job.job_type, ledger=led, settings=settings, _keep_failed=bool(ids_), **kwargs, **job.params)
    finally:
        led.close()


def status(job_id: str, ledger: str | None = None) -> JobResult:
    """The current state of a job (by id or unambiguous prefix) from the ledger."""
    settings = Settings()
    led = open_ledger(ledger or settings.ledger, settings, read_only=True)
    try:
        return job_summary(led, led.find_job(job_id), with_metrics=True)
    finally:
        led.close()
