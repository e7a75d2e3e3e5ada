"""Commands of the publishing lifecycle: ``approve`` or ``reject`` a job run with ``publish=review``, and
``unpublish`` what a job published, and an output's ``history``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import lifecycle
from ..status import JobStatus
from ..units import human_bytes
from .common import EXIT_STATUS, JobIdArg, JsonOpt, LedgerOpt, err, out, print_json

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


def unpublish(job_id: Annotated[str | None, typer.Argument(help="Job id or unambiguous prefix.")] = None,
              collection: Annotated[str | None, typer.Option(help="Every job that published into this "
                                                                  "collection, instead of one job.")] = None,
              item: Annotated[str | None, typer.Option(help="Only this item of --collection (and its file).")] = None,
              yes: Annotated[bool, typer.Option("--yes", help="Act; without it, only show what would go.")] = False,
              by: ByOpt = None, ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Take back what a job published: its STAC items (pgstac, static catalog) and the files it wrote.

    A dry run unless --yes. Only files whose sha256 still matches what the job recorded are removed;
    changed ones are kept and listed (exit 3). Interrupted, it finishes when run again.
    """
    res = lifecycle.unpublish(job_id, collection=collection, item=item, yes=yes, by=by, ledger=ledger)
    refused = any(j.get("refused") for j in res["jobs"])
    if as_json:
        print_json(res)
    else:
        t = Table("job", "collection", "items", "outputs", "refused" if yes else "static / pgstac",
                  title="unpublished" if yes else "would unpublish (dry run; --yes to act)")
        for j in res["jobs"]:
            last = str(len(j["refused"])) if yes else f"{j['static_catalog'] or '-'} / {'yes' if j['pgstac'] else '-'}"
            t.add_row(j["job_id"][:12], escape(str(j["collection"] or "-")), str(len(j["items"])),
                      str(len(j.get("removed", j["outputs"]))), escape(last))
        out.print(t)
        for j in res["jobs"]:
            for url, why in (j.get("refused") or {}).items():
                err.print(f"[yellow]kept[/] {escape(url)}: {escape(why)}")
    raise typer.Exit(EXIT_STATUS[JobStatus.COMPLETED_WITH_ERRORS] if refused else 0)


def history(url: Annotated[str, typer.Argument(help="An output's URL (local path, az://...).")],
            ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """List an output's revisions: the jobs that wrote it, with the sha256 and size each recorded."""
    rows = lifecycle.history(url, ledger=ledger)
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print(f"No job in this ledger wrote {escape(url)}.")
        raise typer.Exit(2)
    t = Table("revision", "job", "type", "status", "written", "size", "sha256", title=escape(url))
    for r in rows:
        t.add_row(str(r["revision"]) + (" (current)" if r["current"] else ""), r["job_id"][:12], r["job_type"] or "?",
                  r["status"] or "?", r["at"], human_bytes(r["size"]), (r["sha256"] or "-")[:16])
    out.print(t)
