"""Commands that read the ledger: ``status``, ``jobs``, ``tasks``, ``events``, ``report``, and ``cancel``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import api
from ..errors import InvalidSetting
from ..htmlreport import write_html_report
from ..ledger import open_ledger
from ..ledger.records import JobRecord
from ..lifecycle import review_state
from ..report import metrics_table, parse_since, progress_table, seconds, styled, when
from ..settings import Settings
from ..status import JobStatus, TaskStatus
from ..storage.faults import INVALID
from .common import JobIdArg, JsonOpt, LedgerOpt, err, out, parse_bbox, print_json

QUARANTINED = "quarantined"  # how `tasks` shows a task failed on invalid input (never retried)
TASK_KEYS = ("task_id", "stage_name", "key", "status", "attempts", "error_kind", "error_code", "error_message",
             "remediation", "worker", "started_at", "finished_at")


def check_status(value: str | None, choices: list[str]) -> None:
    """A --status filter must name a status, or it silently matches nothing."""
    if value is not None and value not in choices:
        raise InvalidSetting(f"--status {value!r} is not a status; choose one of: {', '.join(choices)}")


def status_label(job: JobRecord, lease_ttl: float) -> str:
    """The job's status as the tables show it: a running job whose driver is gone says so."""
    seen = job.seen_status(lease_ttl)
    return styled(seen) + (" (driver gone)" if seen != job.status else "")


def status(job_id: JobIdArg, ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job: status, per-stage task counts, progress, durations, first errors."""
    led = open_ledger(ledger, read_only=True)
    job = led.find_job(job_id)
    res = api.job_summary(led, job, with_metrics=True)
    failed = led.list_tasks(job.job_id, status=TaskStatus.FAILED, limit=5)
    review = review_state(led, job)
    if as_json:
        d = res.to_dict()
        d["errors"] = [{k: t[k] for k in ("task_id", "error_code", "error_message", "remediation")} for t in failed]
        d["review"] = review
        print_json(d)
        return
    out.print(progress_table(res))
    out.print(metrics_table(res))
    out.print(f"created {when(job.created_at)}  started {when(job.started_at)}  finished {when(job.finished_at)}"
              f"  duration {seconds(job.duration)}  runs {job.runs}")
    for t in failed:
        out.print(f"[red]{t['task_id']}[/] " + escape(f"{t['error_code']}: {t['error_message']}\n    → {t['remediation']}"))
    if res.error:
        out.print(f"[yellow]{escape(res.error)}[/]")
    if review:
        out.print(escape(review_line(job.job_id, review)))


def review_line(job_id: str, review: dict) -> str:
    """One line on where a reviewed job stands, and what to do next."""
    if review["state"] == "awaiting":
        where = ", ".join(review["previews"]) or "no items staged"
        return (f"awaiting review; preview: {where}. Publish with `geoproc approve {job_id[:12]}`, or "
                f"`geoproc reject {job_id[:12]} --reason ...`.")
    if review["state"] in ("approved", "rejected"):
        why = review.get("note") or review.get("reason")
        return f"{review['state']} by {review['by']} at {review['at']}" + (f": {why}" if why else "")
    return "publish=review: nothing staged yet"


def jobs(status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
         type_: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
         since: Annotated[str | None, typer.Option(help="Created since: 7d, 12h, 30m or an ISO date.")] = None,
         until: Annotated[str | None, typer.Option(help="Created until: same forms as --since.")] = None,
         bbox: Annotated[str | None, typer.Option(help="west,south,east,north: jobs whose outputs intersect it.")] = None,
         limit: Annotated[int, typer.Option(help="Most jobs to show.")] = 20,
         ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """List recent jobs, filtered by status, type, time range or output footprint."""
    box = parse_bbox(bbox)
    check_status(status, [s.value for s in JobStatus])
    led = open_ledger(ledger, read_only=True)
    ttl = Settings().lease_ttl
    rows = led.list_jobs(status=status, job_type=type_, limit=limit, since=parse_since(since),
                         until=parse_since(until), bbox=box)
    if as_json:
        print_json([{"job_id": j.job_id, "job_type": j.job_type, "status": j.seen_status(ttl),
                     "created_at": j.created_at, "duration": j.duration, "bbox": j.bbox} for j in rows])
        return
    t = Table("job id", "type", "status", "created", "duration", "runs")
    for j in rows:
        t.add_row(j.job_id[:12], j.job_type, status_label(j, ttl), when(j.created_at), seconds(j.duration),
                  str(j.runs))
    out.print(t)


def tasks(job_id: JobIdArg,
          status: Annotated[str | None, typer.Option(help="Only tasks with this status.")] = None,
          quarantined: Annotated[bool, typer.Option("--quarantined", help="Only tasks failed on invalid input.")] = False,
          limit: Annotated[int, typer.Option(help="Most tasks to show.")] = 50,
          ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """List a job's tasks; failed ones show their error code, and quarantined ones (invalid input) too."""
    check_status(status, [*(s.value for s in TaskStatus), QUARANTINED])
    if status == QUARANTINED:  # the label the table shows: failed on invalid input
        status, quarantined = TaskStatus.FAILED, True
    led = open_ledger(ledger, read_only=True)
    job = led.find_job(job_id)
    rows = led.list_tasks(job.job_id, status=status, limit=limit, error_kind=INVALID if quarantined else None)
    if as_json:
        print_json([{k: r[k] for k in TASK_KEYS} for r in rows])
        return
    t = Table("task id", "stage", "key", "status", "attempts", "error", "remediation")
    for r in rows:
        state = QUARANTINED if r["error_kind"] == INVALID and r["status"] == TaskStatus.FAILED else r["status"]
        t.add_row(r["task_id"], r["stage_name"], escape(r["key"][:40]), styled(state), str(r["attempts"]),
                  escape(f"{r['error_code']}: {r['error_message']}") if r["error_code"] else "",
                  escape(r["remediation"] or ""))
    out.print(t)


def events(job_id: JobIdArg, ledger: LedgerOpt = None, as_json: JsonOpt = False) -> None:
    """Show a job's event trail (runs, stages, failures, cancellations, lease takeovers)."""
    led = open_ledger(ledger, read_only=True)
    job = led.find_job(job_id)
    rows = led.events(job.job_id)
    if as_json:
        print_json(rows)
        return
    t = Table("time", "event", "stage", "task", "message")
    for e in rows:
        t.add_row(when(e["at"]), e["kind"], "" if e["stage"] is None else str(e["stage"]), e["task_id"] or "",
                  escape(e["message"] or ""))
    out.print(t)


def cancel(job_id: JobIdArg, ledger: LedgerOpt = None) -> None:
    """Cancel a running job: its driver stops it and marks unstarted tasks cancelled."""
    led = open_ledger(ledger)
    job = led.find_job(job_id)
    if job.terminal:
        err.print(f"Job {job.job_id[:12]} is already {job.status}; nothing to cancel.")
        raise typer.Exit(0)
    job = led.request_cancel(job.job_id)
    if job.status == JobStatus.CANCELLED:
        out.print(f"Job {job.job_id[:12]} cancelled.")
    else:
        out.print(f"Cancel requested; the driver of job {job.job_id[:12]} stops within a few seconds.")


def report(job_id: JobIdArg,
           html: Annotated[str, typer.Option("--html", help="Write the one-page HTML report to this file.")],
           ledger: LedgerOpt = None) -> None:
    """Write a one-page HTML report of a job: stages, timings, errors with remediation, quicklooks."""
    out.print(f"Report written to {write_html_report(job_id, html, ledger=ledger)}", soft_wrap=True, highlight=False)
