"""The ``geoproc`` command line: a thin layer over the Python API.

Exit codes (also in the README):

====  =====================================================================
0     the job completed (or the command succeeded)
1     the job failed
2     user error: unknown job, bad parameter, bad spec file, unknown job id
3     the job completed with errors (some tasks failed; see ``geoproc tasks``)
4     the job was cancelled
5     environment error: ledger, storage or cluster unusable
130   interrupted (SIGINT/SIGTERM); run the same job again to resume
====  =====================================================================
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import api
from .errors import ClusterError, GeoprocError, LedgerError, PgstacError, StorageError, UserError
from .jobs import ALL_JOBS, get_job
from .ledger import open_ledger
from .report import metrics_table, parse_since, progress_table, seconds, styled, when

app = typer.Typer(help="Parallel raster ETL on Dask, with a resumable job ledger.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
out = Console()
err = Console(stderr=True)

EXIT_STATUS = {"completed": 0, "failed": 1, "completed_with_errors": 3, "cancelled": 4, "interrupted": 130}
EXIT_ERROR: list[tuple[type[BaseException], int]] = [
    (UserError, 2), (LedgerError, 5), (StorageError, 5), (ClusterError, 5), (PgstacError, 5), (GeoprocError, 1),
]

LedgerOpt = Annotated[str | None, typer.Option("--ledger", envvar="GEOPROC_LEDGER",
                                                help="Ledger URL: sqlite:///PATH or postgresql://...")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SetOpt = Annotated[list[str], typer.Option("--set", "-s", help="Parameter as key=value (repeatable).")]
ClusterOpt = Annotated[str | None, typer.Option(help="local, tcp://HOST:PORT, or kubernetes.")]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes for a local cluster.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-run every task, even completed ones.")]


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, booleans, lists)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


class _ProgressView:
    """Per-stage progress bars fed by the engine's events."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, disable=not enabled, transient=False)
        self.bars: dict[int, Any] = {}

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "cluster" and data.get("dashboard"):
            err.print(f"Dask dashboard: {data['dashboard']} ({data.get('workers')} workers)")
        elif kind == "following":
            err.print(f"Job is running in another process ({data['owner']}); waiting for it to finish.")
        elif kind == "started":
            err.print(f"Job {data['job_id'][:12]} started (run {data['run']}).")
        elif kind == "stage":
            bar = self.bars.get(data["stage"])
            if bar is None:
                self.bars[data["stage"]] = self.progress.add_task(data["name"], total=data["total"],
                                                                  completed=data["done"])
            else:
                self.progress.update(bar, total=data["total"], completed=data["done"])
        elif kind == "progress" and data["stage"] in self.bars:
            self.progress.advance(self.bars[data["stage"]], data["done"])


def _handle_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    job: Annotated[str, typer.Argument(help="Job type (see `geoproc list`) or a spec file (jobs/*.toml).")],
    set_: SetOpt = [],  # noqa: B006
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    ledger: LedgerOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a job (or resume it); a finished job returns its stored result at once."""
    _run_and_report(lambda view: api.run(job, cluster=cluster, workers=workers, ledger=ledger, force=force,
                                         on_event=view, **parse_sets(set_)), as_json)


@app.command()
def plan(
    job: Annotated[str, typer.Argument(help="large_raster, or a spec file of it (jobs/large_raster.toml).")],
    set_: SetOpt = [],  # noqa: B006
    geojson: Annotated[str | None, typer.Option(help="Write the tile footprints (EPSG:4326) as GeoJSON here.")] = None,
    png: Annotated[str | None, typer.Option(help="Write a PNG map of the tiles over the source outline here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a tiling plan from the source header only: tiles, bytes, memory per task; nothing runs."""
    from .jobs.tiled import dry_run
    from .report import human_bytes

    s = dry_run(job, parse_sets(set_), geojson=geojson, png=png)
    if as_json:
        out.print_json(json.dumps(s))
        return
    t = Table(show_header=False, title=f"Tiling plan: {s['source']} → {s['crs']}", title_justify="left")
    t.add_row("output grid", f"{s['shape'][1]} x {s['shape'][0]} px, resolution {s['resolution'][0]:g}")
    t.add_row("tiles", f"{s['tiles']} of {s['tile_size']} px ({s['grid'][0]} x {s['grid'][1]}, "
                       f"{s['empty_tiles']} empty), halo {s['halo']}")
    t.add_row("bytes to read / write", f"{human_bytes(s['bytes_to_read'])} / {human_bytes(s['bytes_to_write'])}")
    fits = "fits" if s["memory_per_task"] <= s["memory_budget"] else "[red]over budget[/]"
    t.add_row("memory per task", f"{human_bytes(s['memory_per_task'])} of {human_bytes(s['memory_budget'])} ({fits})")
    for key in ("geojson", "png"):
        if key in s:
            t.add_row(key, s[key])
    out.print(t)


def _run_and_report(start: Any, as_json: bool) -> None:
    """Run ``start(progress_view)`` with progress bars, print the result, exit with the job's code."""
    signal.signal(signal.SIGTERM, _handle_sigterm)
    view = _ProgressView(enabled=not as_json)
    with view.progress:
        res = start(view)
    if as_json:
        out.print_json(json.dumps(res.to_dict(), default=str))
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
            out.print_json(json.dumps(res.result, default=str))
    if res.error:
        err.print(f"[yellow]{res.error}[/]")
    out.print(f"job id: {res.job_id}  status: {styled(res.status)}  duration: {seconds(res.duration)}")


@app.command()
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
    as_json: JsonOpt = False,
) -> None:
    """Convert rasters to Cloud-Optimized GeoTIFFs: short for `geoproc run cog --set input=SRC ...`."""
    params = {"input": src, "output": dst, "target_crs": target_crs, "tier": tier, **parse_sets(set_)}
    _run_and_report(lambda view: api.run("cog", cluster=cluster, workers=workers, ledger=ledger, force=force,
                                         on_event=view, **params), as_json)


@app.command()
def status(job_id: Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")],
           ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job: status, per-stage task counts, progress, durations, first errors."""
    led = open_ledger(ledger)
    job = led.find_job(job_id)
    res = api.job_summary(led, job, with_metrics=True)
    failed = led.list_tasks(job.job_id, status="failed", limit=5)
    if as_json:
        d = res.to_dict()
        d["errors"] = [{k: t[k] for k in ("task_id", "error_code", "error_message", "remediation")} for t in failed]
        out.print_json(json.dumps(d, default=str))
        return
    out.print(progress_table(res))
    out.print(metrics_table(res))
    out.print(f"created {when(job.created_at)}  started {when(job.started_at)}  finished {when(job.finished_at)}"
              f"  duration {seconds(job.duration)}  runs {job.runs}")
    for t in failed:
        out.print(f"[red]{t['task_id']}[/] {t['error_code']}: {t['error_message']}\n    → {t['remediation']}")
    if job.error:
        out.print(f"[yellow]{job.error}[/]")


@app.command()
def jobs(status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
         type_: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
         since: Annotated[str | None, typer.Option(help="Created since: 7d, 12h, 30m or an ISO date.")] = None,
         until: Annotated[str | None, typer.Option(help="Created until: same forms as --since.")] = None,
         bbox: Annotated[str | None, typer.Option(help="west,south,east,north: jobs whose outputs intersect it.")] = None,
         limit: Annotated[int, typer.Option(help="Most jobs to show.")] = 20,
         ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """List recent jobs, filtered by status, type, time range or output footprint."""
    led = open_ledger(ledger)
    box = None
    if bbox:
        try:
            box = [float(v) for v in bbox.split(",")]
            assert len(box) == 4 and box[0] <= box[2] and box[1] <= box[3]
        except (ValueError, AssertionError):
            raise typer.BadParameter(f"--bbox expects west,south,east,north with west<=east, south<=north; got {bbox!r}") from None
    rows = led.list_jobs(status=status, job_type=type_, limit=limit, since=parse_since(since),
                         until=parse_since(until), bbox=box)
    if as_json:
        out.print_json(json.dumps([{"job_id": j.job_id, "job_type": j.job_type, "status": j.status,
                                    "created_at": j.created_at, "duration": j.duration, "bbox": j.bbox}
                                   for j in rows]))
        return
    t = Table("job id", "type", "status", "created", "duration", "runs")
    for j in rows:
        t.add_row(j.job_id[:12], j.job_type, styled(j.status), when(j.created_at), seconds(j.duration), str(j.runs))
    out.print(t)


@app.command()
def tasks(job_id: Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")],
          status: Annotated[str | None, typer.Option(help="Only tasks with this status.")] = None,
          quarantined: Annotated[bool, typer.Option("--quarantined", help="Only tasks failed on invalid input.")] = False,
          limit: Annotated[int, typer.Option(help="Most tasks to show.")] = 50,
          ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """List a job's tasks; failed ones show their error code, and quarantined ones (invalid input) too."""
    led = open_ledger(ledger)
    job = led.find_job(job_id)
    rows = led.list_tasks(job.job_id, status=status, limit=limit, error_kind="invalid" if quarantined else None)
    if as_json:
        keys = ("task_id", "stage_name", "key", "status", "attempts", "error_kind", "error_code", "error_message", "remediation",
                "worker", "started_at", "finished_at")
        out.print_json(json.dumps([{k: r[k] for k in keys} for r in rows], default=str))
        return
    t = Table("task id", "stage", "key", "status", "attempts", "error", "remediation")
    for r in rows:
        state = "quarantined" if r["error_kind"] == "invalid" and r["status"] == "failed" else r["status"]
        t.add_row(r["task_id"], r["stage_name"], r["key"][:40], styled(state), str(r["attempts"]),
                  f"{r['error_code']}: {r['error_message']}" if r["error_code"] else "", r["remediation"] or "")
    out.print(t)


@app.command()
def retry(
    job_id: Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")],
    failed: Annotated[bool, typer.Option("--failed", help="Re-run failed, skipped and cancelled tasks (default).")] = True,
    task: Annotated[list[str], typer.Option("--task", help="Re-run only this task (id or key; repeatable).")] = [],  # noqa: B006
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    ledger: LedgerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a job's failed tasks after fixing their inputs; attempt history is kept."""
    _run_and_report(lambda view: api.retry(job_id, task_ids=task or None, cluster=cluster, workers=workers,
                                           ledger=ledger, on_event=view), as_json)


@app.command()
def cancel(job_id: Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")],
           ledger: LedgerOpt = None) -> None:
    """Cancel a running job: its driver stops it and marks unstarted tasks cancelled."""
    led = open_ledger(ledger)
    job = led.find_job(job_id)
    if job.terminal:
        err.print(f"Job {job.job_id[:12]} is already {job.status}; nothing to cancel.")
        raise typer.Exit(0)
    job = led.request_cancel(job.job_id)
    if job.status == "cancelled":
        out.print(f"Job {job.job_id[:12]} cancelled.")
    else:
        out.print(f"Cancel requested; the driver of job {job.job_id[:12]} stops within a few seconds.")


@app.command()
def events(job_id: Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")],
           ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job's event trail (runs, stages, failures, cancellations, lease takeovers)."""
    led = open_ledger(ledger)
    job = led.find_job(job_id)
    rows = led.events(job.job_id)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    t = Table("time", "event", "stage", "task", "message")
    for e in rows:
        t.add_row(when(e["at"]), e["kind"], "" if e["stage"] is None else str(e["stage"]), e["task_id"] or "",
                  e["message"] or "")
    out.print(t)


@app.command()
def samples(directory: Annotated[str, typer.Argument(help="Directory to write the sample rasters into.")]) -> None:
    """Write small sample GeoTIFFs (a UTM DEM, an RGB image, a land-cover map) to try geoproc on."""
    from .raster.samples import write_samples

    for path in write_samples(directory):
        out.print(str(path))


@app.command()
def doctor(
    storage: Annotated[str | None, typer.Option(help="A location to test: list, write, read, GDAL open (e.g. az://container/prefix).")] = None,
    cluster: Annotated[str | None, typer.Option(help="A Dask scheduler address to test.")] = None,
    pgstac_dsn: Annotated[str | None, typer.Option(envvar="GEOPROC_PGSTAC_DSN", help="A pgstac database to test.")] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Check the ledger, storage credentials, cluster, pgstac and GDAL; stop at the first broken part."""
    from .doctor import run_checks

    for check in run_checks(ledger=ledger, storage=storage, cluster=cluster, pgstac_dsn=pgstac_dsn):
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        if not check.ok:
            raise typer.Exit(5)


@app.command()
def report(job_id: Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")],
           html: Annotated[str, typer.Option("--html", help="Write the one-page HTML report to this file.")],
           ledger: LedgerOpt = None) -> None:
    """Write a one-page HTML report of a job: stages, timings, errors with remediation, quicklooks."""
    from .htmlreport import write_html_report

    out.print(f"Report written to {write_html_report(job_id, html, ledger=ledger)}", soft_wrap=True, highlight=False)


@app.command("list")
def list_jobs(as_json: JsonOpt = False) -> None:
    """List the job types and their parameters (from the registry)."""
    if as_json:
        out.print_json(json.dumps({n: {"description": jt.description, "params": jt.describe_params()}
                                   for n, jt in ALL_JOBS.items()}, default=str))
        return
    for name in sorted(ALL_JOBS):
        jt = get_job(name)
        t = Table("parameter", "type", "default", "allowed", "help", title=f"{name} — {jt.description}",
                  title_justify="left")
        for p in jt.describe_params():
            default = "(required)" if p["required"] else repr(p["default"])
            t.add_row(p["name"] + ("" if p["hashed"] else " *"), escape(p["type"]), escape(default), p["bounds"],
                      escape(p["help"]))
        out.print(t)
    out.print("* not part of the job id")


stac_app = typer.Typer(help="STAC: set up a pgstac database.", no_args_is_help=True)
app.add_typer(stac_app, name="stac")


@stac_app.command("setup")
def stac_setup(
    dsn: Annotated[str | None, typer.Option(envvar="GEOPROC_PGSTAC_DSN",
                                            help="pgstac database (postgresql://USER@HOST:PORT/DB).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Install or upgrade pgstac in a database (pypgstac migrate) and report its version; safe to re-run."""
    from .stac.pgstac import redact_dsn, resolve_dsn, setup

    try:
        info = setup(resolve_dsn(dsn))
    except GeoprocError as exc:
        err.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(5) from None
    except Exception as exc:  # noqa: BLE001 - a database error; the DSN is shown without its password
        from .stac.pgstac import split_dsn

        detail = str(exc).splitlines()[0] if str(exc) else ""
        secret = split_dsn(dsn)[1] if dsn else None
        if secret:
            detail = detail.replace(secret, "***")
        err.print(f"pgstac setup failed on {redact_dsn(dsn or '')}: {type(exc).__name__}: {detail}",
                  highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(5) from None
    if as_json:
        out.print_json(json.dumps(info))
        return
    change = f"upgraded from {info['previous']}" if info["previous"] and info["changed"] else (
        "installed" if info["changed"] else "already up to date")
    out.print(f"pgstac {info['version']} ({change}) in {info['dsn']}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console entry point: user errors print one readable line, never a traceback."""
    try:
        rc = app(standalone_mode=False)  # returns typer.Exit's code; typer turns Ctrl-C into 130
        if rc == 130:
            err.print("Interrupted; the ledger records where the job stopped. Run it again to resume.")
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted; the ledger records where the job stopped. Run it again to resume.")
        sys.exit(130)
    except GeoprocError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(next(code for kind, code in EXIT_ERROR if isinstance(exc, kind)))
    except Exception as exc:
        # usage errors (missing argument, bad option) come from the click that typer bundles
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(2)
        if type(exc).__name__ == "Abort":  # click turns KeyboardInterrupt into Abort
            err.print("Interrupted; the ledger records where the job stopped. Run it again to resume.")
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
