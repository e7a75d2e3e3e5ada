"""The ``geoproc`` command line: a thin layer over the Python API.

Exit codes (also in the README):

====  =====================================================================
0     the job completed or awaits review (or the command succeeded)
1     the job failed, or was rejected or unpublished
2     user error: unknown job, bad parameter, bad spec file, unknown job id, inputs refused before
      anything ran (the code and its remediation are printed)
3     the job completed with errors (some tasks failed; see ``geoproc tasks``); ``unpublish`` kept files
      changed since the job wrote them
4     the job was cancelled
5     environment error: ledger, storage or cluster unusable
130   interrupted (SIGINT/SIGTERM); run the same job again to resume
====  =====================================================================

An error geoproc raises on purpose prints as one line on stderr, never as a traceback. Logs go to
stderr too (``-v`` INFO, ``-vv`` DEBUG, or ``GEOPROC_LOG_LEVEL``), so stdout holds only results.
The commands live in :mod:`.running` (jobs that run), :mod:`.views` (reading the ledger) and
:mod:`.info` (geoproc itself).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import GeoprocError, InputRefused, InvalidInput
from ..logs import configure_logging, level_for
from ..settings import Settings
from ..version import __version__
from . import info, review, running, views
from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_STATUS, EXIT_USAGE, INTERRUPTED, err, exit_code

__all__ = ["EXIT_ERROR", "EXIT_STATUS", "app", "main"]

log = logging.getLogger(__name__)


class _Commands(TyperGroup):
    """Turns a :class:`GeoprocError` into its one-line message and exit code, in every way of calling."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeoprocError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            if isinstance(exc, InputRefused | InvalidInput):  # bad input found before anything ran
                err.print(f"  [{exc.code}] {escape(exc.remediation)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(cls=_Commands, help="Parallel raster ETL on Dask, with a resumable job ledger.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _options(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                                  help="Log more to stderr: -v INFO, -vv DEBUG "
                                                       "(default: GEOPROC_LOG_LEVEL, else WARNING).")] = 0) -> None:
    configure_logging(level_for(verbose, os.environ.get("GEOPROC_LOG_LEVEL")))
    Settings()  # every GEOPROC_* variable is checked before any command starts: one line, exit 2
    # Python hides DeprecationWarnings outside __main__; a CLI user must see that a name is going away
    warnings.filterwarnings("default", message=r".*is deprecated; use ", category=DeprecationWarning)
    log.debug("geoproc %s, logging at %s", __version__, logging.getLevelName(logging.getLogger("geoproc").level))


for _fn in (running.run, running.plan, running.cog, views.status, views.jobs, views.tasks, running.retry,
            views.cancel, views.events, review.approve, review.reject, review.unpublish, review.history, info.samples, info.doctor, views.report,
            info.codes):
    app.command()(_fn)
app.command("list")(info.list_jobs)
app.add_typer(info.stac_app, name="stac")


def main() -> None:
    """Console entry point: user errors print one readable line, never a traceback."""
    try:
        rc = app(standalone_mode=False)  # returns typer.Exit's code; typer turns Ctrl-C into 130
        if rc == EXIT_INTERRUPTED:
            err.print(INTERRUPTED)
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print(INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except GeoprocError as exc:  # raised outside a command (while parsing options)
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exit_code(exc))
    except typer.Abort:  # click turns KeyboardInterrupt into Abort
        err.print(INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        # usage errors (missing argument, bad option) come from the click that typer bundles
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(EXIT_USAGE)
        raise
