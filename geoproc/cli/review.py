"""Commands of the publishing lifecycle: ``approve`` and ``reject`` a job run with ``publish=review``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from .. import lifecycle
from .common import JobIdArg, JsonOpt, LedgerOpt, out, print_json

ByOpt = Annotated[str | None, typer.Option("--by", help="Who decides (default: $GEOPROC_USER, else the login name).")]


def approve(job_id: JobIdArg, note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
            by: ByOpt = None, ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Publish a job awaiting review: load pgstac (checked against the ledger) and the public catalog."""
    res = lifecycle.approve(job_id, by=by, note=note, ledger=ledger)
    if as_json:
        print_json(res.to_dict())
        return
    out.print(f"Job {res.job_id[:12]} approved by {escape(lifecycle.reviewer(by))}: {res.status}.")


def reject(job_id: JobIdArg,
           reason: Annotated[str, typer.Option("--reason", help="Why the job is turned down (recorded).")],
           delete_outputs: Annotated[bool, typer.Option("--delete-outputs", help="Also remove the files the job "
                                                        "wrote (unchanged ones only) and its preview.")] = False,
           by: ByOpt = None, ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Turn down a job awaiting review: nothing is published; optionally remove what it wrote."""
    res = lifecycle.reject(job_id, reason=reason, by=by, delete_outputs=delete_outputs, ledger=ledger)
    if as_json:
        print_json(res.to_dict())
        return
    out.print(f"Job {res.job_id[:12]} rejected by {escape(lifecycle.reviewer(by))}.")
