"""Commands about geoproc itself: ``list``, ``codes``, ``doctor``, ``samples`` and ``stac setup``."""

from __future__ import annotations

import difflib
from typing import Annotated

import typer

from ..doctor import run_checks
from ..errors import GeoprocError, UserError, catalogue, code_info
from ..jobs import ALL_JOBS, get_job
from ..raster.samples import write_samples
from ..report import codes_view, job_list, param_table
from ..stac.pgstac import redact_dsn, resolve_dsn, setup, split_dsn
from .common import EXIT_ENVIRONMENT, JsonOpt, LedgerOpt, err, out, print_json

stac_app = typer.Typer(help="STAC: set up a pgstac database.", no_args_is_help=True)


def list_jobs(job: Annotated[str | None, typer.Argument(help="A job type: show its parameters.")] = None,
              as_json: JsonOpt = False) -> None:
    """List the job types with a one-line summary each, or one job type's parameters."""
    if as_json:
        chosen = {job: get_job(job)} if job else ALL_JOBS
        print_json({n: {"description": jt.description, "params": jt.describe_params()} for n, jt in chosen.items()})
        return
    if job is None:
        out.print(job_list(ALL_JOBS))
        out.print("\nParameters of one job type: geoproc list JOB_TYPE", highlight=False)
        return
    out.print(param_table(get_job(job)))


def codes(code: Annotated[str | None, typer.Argument(help="One code, e.g. CORRUPT_RASTER or HTTP_503.")] = None,
          as_json: JsonOpt = False) -> None:
    """Explain the error and warning codes: what each means and what to do about it."""
    if code is None:
        entries = list(catalogue().items())
    else:
        info = code_info(code)
        if info is None:
            close = difflib.get_close_matches(code.upper(), list(catalogue()), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"Unknown code {code!r}.{hint} `geoproc codes` lists them all.")
        entries = [(code.upper(), info)]
    if as_json:
        print_json({c: {"meaning": i.meaning, "remediation": i.remediation, "kind": i.kind} for c, i in entries})
        return
    out.print(codes_view(entries), highlight=False)


def doctor(
    storage: Annotated[str | None, typer.Option(help="A location to test: list, write, read, GDAL open (e.g. az://container/prefix).")] = None,
    cluster: Annotated[str | None, typer.Option(help="A Dask scheduler address to test.")] = None,
    pgstac_dsn: Annotated[str | None, typer.Option(envvar="GEOPROC_PGSTAC_DSN", help="A pgstac database to test.")] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Check the ledger, storage credentials, cluster, pgstac and GDAL; stop at the first broken part."""
    for check in run_checks(ledger=ledger, storage=storage, cluster=cluster, pgstac_dsn=pgstac_dsn):
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        if not check.ok:
            raise typer.Exit(EXIT_ENVIRONMENT)


def samples(directory: Annotated[str, typer.Argument(help="Directory to write the sample rasters into.")]) -> None:
    """Write small sample GeoTIFFs (a UTM DEM, an RGB image, a land-cover map) to try geoproc on."""
    for path in write_samples(directory):
        out.print(str(path))


@stac_app.command("setup")
def stac_setup(
    dsn: Annotated[str | None, typer.Option(envvar="GEOPROC_PGSTAC_DSN",
                                            help="pgstac database (postgresql://USER@HOST:PORT/DB).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Install or upgrade pgstac in a database (pypgstac migrate) and report its version; safe to re-run."""
    try:
        info = setup(resolve_dsn(dsn))
    except GeoprocError as exc:
        err.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ENVIRONMENT) from None
    except Exception as exc:  # noqa: BLE001 - a database error; the DSN is shown without its password
        detail = str(exc).splitlines()[0] if str(exc) else ""
        secret = split_dsn(dsn)[1] if dsn else None
        if secret:
            detail = detail.replace(secret, "***")
        err.print(f"pgstac setup failed on {redact_dsn(dsn or '')}: {type(exc).__name__}: {detail}",
                  highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_ENVIRONMENT) from None
    if as_json:
        print_json(info)
        return
    change = f"upgraded from {info['previous']}" if info["previous"] and info["changed"] else (
        "installed" if info["changed"] else "already up to date")
    out.print(f"pgstac {info['version']} ({change}) in {info['dsn']}", highlight=False, soft_wrap=True)
