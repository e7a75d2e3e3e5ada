"""Commands that run a job: ``run``, ``cog``, ``retry``, and ``plan`` (which only plans one)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import api
from ..htmlreport import write_review_report
from ..jobs import ALL_JOBS
from ..ledger import open_ledger
from ..planview import dry_run
from ..report import progress_table, seconds, styled
from ..status import JobStatus, TaskStatus
from ..storage import redact
from ..units import human_bytes
from .common import (
    EXIT_STATUS,
    ClusterOpt,
    ForceOpt,
    JobIdArg,
    JsonOpt,
    LedgerOpt,
    SetOpt,
    VerifyOpt,
    WorkersOpt,
    err,
    out,
    parse_sets,
    print_json,
)
from .views import review_line

log = logging.getLogger(__name__)


class ProgressView:
    """Per-stage progress bars on stderr, fed by the engine's events.

    The bars start with the first stage, so a job refused before it runs (unknown job, bad
    parameter) leaves nothing on the terminal but its one-line error.
    """

    def __init__(self, enabled: bool):
        self.progress = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, disable=not enabled, transient=False)
        self.bars: dict[int, Any] = {}
        self._started = False

    def __call__(self, kind: str, data: dict) -> None:
        log.debug("event %s %s", kind, data)
        if kind == "cluster" and data.get("dashboard"):
            err.print(f"Dask dashboard: {data['dashboard']} ({data.get('workers')} workers)")
        elif kind == "following":
            err.print(f"Job is running in another process ({data['owner']}); waiting for it to finish.")
        elif kind == "started":
            err.print(f"Job {data['job_id'][:12]} started (run {data['run']}).")
        elif kind == "stage":
            if not self._started:
                self.progress.start()
                self._started = True
            bar = self.bars.get(data["stage"])
            if bar is None:
                self.bars[data["stage"]] = self.progress.add_task(data["name"], total=data["total"],
                                                                  completed=data["done"])
            else:
                self.progress.update(bar, total=data["total"], completed=data["done"])
        elif kind == "notice":
            err.print(escape(data["message"]))
        elif kind == "progress" and data["stage"] in self.bars:
            self.progress.advance(self.bars[data["stage"]], data["done"])

    def close(self) -> None:
        if self._started:
            self.progress.stop()


def _handle_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_and_report(start: Callable[[ProgressView], api.JobResult], as_json: bool, ledger: str | None = None) -> None:
    """Run ``start(progress_view)`` with progress bars, print the result, exit with the job's code.

    A job that ends awaiting review gets its HTML report beside its preview catalog, for the reviewer.
    """
    signal.signal(signal.SIGTERM, _handle_sigterm)
    view = ProgressView(enabled=not as_json)
    try:
        res = start(view)
    finally:
        view.close()
    if res.status == JobStatus.AWAITING_REVIEW:
        reports = write_review_report(res.job_id, ledger=ledger)
        for url in reports.values():
            err.print(f"Review report: {escape(redact(url))}")
        err.print(escape(review_line(res.job_id, {"state": "awaiting", "previews": list(reports)})))
    if as_json:
        print_json(res.to_dict())
    else:
        if res.cached:
            err.print(f"Job {res.job_id[:12]} already {res.status}: stored result, nothing recomputed.")
        _print_result(res)
    raise typer.Exit(EXIT_STATUS.get(res.status, 1))


def _print_result(res: api.JobResult) -> None:
    out.print(progress_table(res))
    jt = ALL_JOBS.get(res.job_type)
    if res.result is not None:
        if jt is not None and jt.render is not None:
            out.print(jt.render(res.result))
        else:
            print_json(res.result)
    if res.error:
        err.print(f"[yellow]{escape(res.error)}[/]")
    out.print(f"job id: {res.job_id}  status: {styled(res.status)}  duration: {seconds(res.duration)}")


def run(
    job: Annotated[str, typer.Argument(help="Job type (see `geoproc list`) or a spec file (jobs/*.toml).")],
    set_: SetOpt = [],  # noqa: B006
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    ledger: LedgerOpt = None,
    force: ForceOpt = False,
    verify: VerifyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a job (or resume it); a finished job returns its stored result at once."""
    run_and_report(lambda view: api.run(job, cluster=cluster, workers=workers, ledger=ledger, force=force,
                                        verify=verify, on_event=view, **parse_sets(set_)), as_json, ledger)


def cog(
    src: Annotated[str, typer.Argument(help="A raster, or a directory / container / prefix of rasters (URL).")],
    dst: Annotated[str, typer.Argument(help="Output prefix (or the exact .tif for a single input).")],
    target_crs: Annotated[str, typer.Option("--target-crs", help="Output CRS, or 'keep'.")] = "EPSG:4326",
    tier: Annotated[str, typer.Option(help="visualization, analysis or archive.")] = "analysis",
    set_: SetOpt = [],  # noqa: B006
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    ledger: LedgerOpt = None,
    force: ForceOpt = False,
    verify: VerifyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert rasters to Cloud-Optimized GeoTIFFs: short for `geoproc run cog --set input=SRC ...`."""
    params = {"input": src, "output": dst, "target_crs": target_crs, "tier": tier, **parse_sets(set_)}
    run_and_report(lambda view: api.run("cog", cluster=cluster, workers=workers, ledger=ledger, force=force,
                                        verify=verify, on_event=view, **params), as_json, ledger)


def failed_task_ids(job_id: str, ledger: str | None) -> tuple[str, list[str]]:
    """(full job id, ids of its failed tasks) from the ledger."""
    led = open_ledger(ledger)
    try:
        job = led.find_job(job_id)
        return job.job_id, [t["task_id"] for t in led.list_tasks(job.job_id, status=TaskStatus.FAILED, limit=None)]
    finally:
        led.close()


def retry(
    job_id: JobIdArg,
    failed: Annotated[bool, typer.Option("--failed", help="Reset only the failed tasks, not skipped or "
                                                          "cancelled ones.")] = False,
    task: Annotated[list[str], typer.Option("--task", help="Re-run only this task (id or key; repeatable).")] = [],  # noqa: B006
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    ledger: LedgerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a job's failed tasks after fixing their inputs; attempt history is kept.

    Failed, skipped and cancelled tasks are reset to pending; with --failed only the failed ones.

    Like every run, a retry also resumes unfinished tasks; a re-run task re-runs the tasks using its result.
    """
    if failed and task:
        raise typer.BadParameter("give either --failed or --task, not both", param_hint="--failed")
    task_ids = task or None
    if failed:
        full_id, task_ids = failed_task_ids(job_id, ledger)
        if not task_ids:
            err.print(f"Job {full_id[:12]} has no failed tasks; nothing to retry.")
            raise typer.Exit(0)
    run_and_report(lambda view: api.retry(job_id, task_ids=task_ids, cluster=cluster, workers=workers,
                                          ledger=ledger, on_event=view), as_json)


def plan(
    job: Annotated[str, typer.Argument(help="large_raster, process, stack or mosaic, or a spec file of one "
                                            "(jobs/large_raster.toml).")],
    set_: SetOpt = [],  # noqa: B006
    geojson: Annotated[str | None, typer.Option(help="Write the tile / region footprints (EPSG:4326) as GeoJSON "
                                                     "here.")] = None,
    png: Annotated[str | None, typer.Option(help="Write a PNG map of the tiles / regions here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's plan from its inputs' headers only: tiles or regions, bytes, memory; nothing runs."""
    s = dry_run(job, parse_sets(set_), geojson=geojson, png=png)
    if as_json:
        print_json(s)
        return
    if "regions" in s:
        t = Table(show_header=False, title=f"Region plan: {s['output']} ({s['format']})", title_justify="left")
        t.add_row("job id", s["job_id"][:12])
        bands = f"{s['shape'][0]} band{'s' if s['shape'][0] > 1 else ''}"
        t.add_row("output grid", f"{s['shape'][2]} x {s['shape'][1]} px, {bands} of {s['dtype']}, {s['crs']}, "
                                 f"resolution {s['resolution'][0]:g}")
        t.add_row("regions", f"{s['regions']} of up to {s['region_shape'][1]} x {s['region_shape'][0]} px, chunks "
                             f"{s['chunks'][1]} x {s['chunks'][0]}")
        t.add_row("bytes to write", f"{human_bytes(s['bytes_to_write'])} ({human_bytes(s['region_output_bytes'])} "
                                    "per region)")
        if s["region_tasks"] is not None:
            t.add_row("Dask tasks per region", str(s["region_tasks"]))
        if "inputs" in s:
            t.add_row("inputs", f"{s['inputs']}; up to {s['inputs_per_region']['max']} per region (mean "
                                f"{s['inputs_per_region']['mean']:g})")
    else:
        t = Table(show_header=False, title=f"Tiling plan: {s['source']} → {s['crs']}", title_justify="left")
        t.add_row("output grid", f"{s['shape'][1]} x {s['shape'][0]} px, resolution {s['resolution'][0]:g}")
        t.add_row("tiles", f"{s['tiles']} of {s['tile_size']} px ({s['grid'][0]} x {s['grid'][1]}, "
                           f"{s['empty_tiles']} empty), halo {s['halo']}")
        t.add_row("bytes to read / write", f"{human_bytes(s['bytes_to_read'])} / {human_bytes(s['bytes_to_write'])}")
        fits = "fits" if s["memory_per_task"] <= s["memory_budget"] else "[red]over budget[/]"
        t.add_row("memory per task", f"{human_bytes(s['memory_per_task'])} of {human_bytes(s['memory_budget'])} "
                                     f"({fits})")
    for key in ("geojson", "png"):
        if key in s:
            t.add_row(key, s[key])
    out.print(t)
