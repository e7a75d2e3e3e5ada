"""What every ``geoproc`` command shares: the consoles, the option types, the exit codes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from ..errors import (
    ClusterError,
    GeoprocError,
    InvalidInput,
    LedgerError,
    PgstacError,
    StorageError,
    UserError,
)
from ..status import JobStatus

out = Console()  # results: tables, or JSON with --json
err = Console(stderr=True)  # progress, notices and errors: never mixed into the results

#: the exit code of a command that ran a job, by the job's final status
EXIT_STATUS: dict[str, int] = {
    JobStatus.COMPLETED: 0, JobStatus.FAILED: 1, JobStatus.COMPLETED_WITH_ERRORS: 3, JobStatus.CANCELLED: 4,
    JobStatus.INTERRUPTED: 130, JobStatus.AWAITING_REVIEW: 0, JobStatus.REJECTED: 1,
    JobStatus.UNPUBLISHED: 1,
}
#: the exit code of a command that raised, by the error's class (first match wins)
EXIT_ERROR: list[tuple[type[BaseException], int]] = [
    (UserError, 2), (InvalidInput, 2), (LedgerError, 5), (StorageError, 5), (ClusterError, 5), (PgstacError, 5), (GeoprocError, 1),
]
EXIT_USAGE = 2  # a bad argument or option (also click's own usage errors)
EXIT_ENVIRONMENT = 5
EXIT_INTERRUPTED = 130
INTERRUPTED = "Interrupted; the ledger records where the job stopped. Run it again to resume."

LedgerOpt = Annotated[str | None, typer.Option("--ledger", envvar="GEOPROC_LEDGER",
                                                help="Ledger URL: sqlite:///PATH or postgresql://...")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SetOpt = Annotated[list[str], typer.Option("--set", "-s", help="Parameter as key=value (repeatable).")]
ClusterOpt = Annotated[str | None, typer.Option(help="local, tcp://HOST:PORT, or kubernetes.")]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes for a local cluster.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-run every task, even completed ones.")]
VerifyOpt = Annotated[bool, typer.Option("--verify", help="Re-hash the outputs of completed tasks against their "
                                                          "recorded sha256 (sizes are always checked).")]
JobIdArg = Annotated[str, typer.Argument(help="Job id or unambiguous prefix.")]


def exit_code(exc: BaseException) -> int:
    """The exit code for an error a command raised (see the table in ``geoproc.cli``)."""
    return next((code for kind, code in EXIT_ERROR if isinstance(exc, kind)), 1)


def print_json(value: Any) -> None:
    """JSON on stdout, nothing else: the one output a script reads."""
    out.print_json(json.dumps(value, default=str))


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


def parse_bbox(text: str | None) -> list[float] | None:
    """``west,south,east,north`` as four floats with west <= east and south <= north."""
    if not text:
        return None
    problem = f"--bbox expects west,south,east,north with west<=east, south<=north; got {text!r}"
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(problem) from None
    if len(box) != 4 or box[0] > box[2] or box[1] > box[3]:
        raise typer.BadParameter(problem)
    return box
