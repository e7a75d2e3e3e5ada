"""The publishing lifecycle of a job: review before publishing, then approve or reject.

A job run with ``publish=review`` writes its outputs and a preview catalog, and ends
``awaiting_review``: nothing reaches pgstac or the public static catalog. :func:`approve` runs the
public step each stage held back (:attr:`geoproc.model.Stage.publish`) with that stage's results
from the ledger; :func:`reject` closes the job and, if asked, removes what it wrote. Each decision is
an event in the ledger that says who decided, when and why; ``geoproc status`` and ``events`` show it.

A decision holds the job's lease while it acts, as a driver does: two reviewers cannot decide at
once, and a run cannot start under a decision. An approval interrupted halfway is simply given
again: the job is still awaiting review, and publishing is idempotent (upserts, whole-file writes).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .api import JobResult, job_summary
from .engine.batching import written_files
from .engine.verdict import APPROVED, REJECTED
from .errors import InvalidSetting, JobBusy, UserError
from .jobs import get_job
from .ledger import JobRecord, Ledger, open_ledger, owner_token
from .model import STAGED, JobType
from .settings import Settings
from .status import JobStatus
from .storage import open_fs, redact, resolve_storage_options
from .storage.outputs import remove_unchanged
from .units import utc_iso

__all__ = ["ReviewRefused", "approve", "reject", "review_state", "reviewer"]


class ReviewRefused(UserError):
    """The job is not awaiting review: never held for one, not finished, or already decided."""


def reviewer(by: str | None = None) -> str:
    """Who decides: ``by``, else ``$GEOPROC_USER``, else the login name."""
    return by or os.environ.get("GEOPROC_USER") or getpass.getuser()


@contextmanager
def _decision(job_id: str, ledger: str | Ledger | None, settings: Settings | None) -> Iterator[tuple[Ledger, JobRecord]]:
    """The ledger and the job, under the job's lease for as long as the decision takes."""
    settings = settings or Settings()
    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger or settings.ledger, settings)
    owner = owner_token()
    try:
        job = led.find_job(job_id)
        if not led.acquire_lease(job.job_id, owner, settings.lease_ttl):
            raise JobBusy(f"Job {job.job_id[:12]} is being run or decided by another process; try again when "
                          "it is done (`geoproc status` shows it).")
        try:
            yield led, led.get_job(job.job_id) or job
        finally:
            led.release_lease(job.job_id, owner)
    finally:
        if not isinstance(ledger, Ledger):
            led.close()


def _expect_review(led: Ledger, job: JobRecord) -> None:
    """Refuse a decision on a job that is not awaiting one, saying why."""
    if job.status == JobStatus.AWAITING_REVIEW:
        return
    decision = led.last_event(job.job_id, (APPROVED, REJECTED))
    if decision:
        data = decision["data"] or {}
        verb = "approved" if decision["kind"] == APPROVED else "rejected"
        raise ReviewRefused(f"Job {job.job_id[:12]} was already {verb} by {data.get('by')} at "
                            f"{utc_iso(decision['at'])}; its status is {job.status}.")
    if (job.params or {}).get("publish") != "review":
        raise ReviewRefused(f"Job {job.job_id[:12]} was not run with publish=review (status {job.status}): "
                            "it had nothing to approve or reject.")
    raise ReviewRefused(f"Job {job.job_id[:12]} is {job.status}, not awaiting review; run it to the end first "
                        "(`geoproc run` with the same parameters resumes it).")


def _staged(led: Ledger, jt: JobType, job_id: str) -> dict[int, dict[str, Any]]:
    """stage index -> what the stage staged, for the stages that hold a public step back."""
    values = led.stage_results(job_id)
    return {i: values[i][STAGED] for i, st in enumerate(jt.stages)
            if st.publish is not None and isinstance(values.get(i), dict) and isinstance(values[i].get(STAGED), dict)}


def approve(job_id: str, *, by: str | None = None, note: str | None = None, ledger: str | Ledger | None = None,
            settings: Settings | None = None) -> JobResult:
    """Publish a job that awaits review: its items into pgstac (checked batches) and the public catalog.

    The items come from the ledger, not from the preview files, so what is published is what the
    tasks recorded. The pgstac password is never stored: give it as ``pgstac_dsn=env`` at run time
    (``GEOPROC_PGSTAC_DSN`` here too), ``PGPASSWORD`` or ``~/.pgpass``.
    """
    who = reviewer(by)
    with _decision(job_id, ledger, settings) as (led, job):
        _expect_review(led, job)
        jt = get_job(job.job_type)
        params = jt.validate(job.params)
        staged = _staged(led, jt, job.job_id)
        values = led.stage_results(job.job_id)
        published: dict[str, Any] = {}
        for i, st in enumerate(jt.stages):
            if i in staged:
                values[i] = st.publish(params, led.stream_results(job.job_id, i))  # type: ignore[misc]
                led.set_stage_result(job.job_id, i, st.name, values[i])
                published[st.name] = values[i]
        result = job.result
        if jt.finalize:
            result = jt.finalize(params, [values.get(i) for i in range(len(jt.stages))])
            if isinstance(job.result, dict) and "failed_tasks" in job.result and isinstance(result, dict):
                result = {**result, "failed_tasks": job.result["failed_tasks"]}
        status = JobStatus.COMPLETED_WITH_ERRORS if job.error else JobStatus.COMPLETED
        led.update_job(job.job_id, status=status, result=result)
        led.event(job.job_id, APPROVED, message=f"approved by {who}" + (f": {note}" if note else ""),
                  data={"by": who, "note": note, "digests": [staged[i]["digest"] for i in sorted(staged)],
                        "published": published})
        return job_summary(led, led.get_job(job.job_id) or job)


def reject(job_id: str, *, reason: str, by: str | None = None, delete_outputs: bool = False,
           ledger: str | Ledger | None = None, settings: Settings | None = None) -> JobResult:
    """Turn down a job that awaits review; nothing is published. ``delete_outputs`` also removes the
    files its tasks wrote (those still as written: a file changed since is kept and named) and its
    preview catalog."""
    if not reason or not reason.strip():
        raise InvalidSetting("a rejection needs a reason (--reason): it is recorded for whoever reads the job")
    who = reviewer(by)
    with _decision(job_id, ledger, settings) as (led, job):
        _expect_review(led, job)
        jt = get_job(job.job_type)
        removal: dict[str, Any] = {}
        if delete_outputs:
            removal = _remove_outputs(led, jt, job)
        led.update_job(job.job_id, status=JobStatus.REJECTED)
        led.event(job.job_id, REJECTED, message=f"rejected by {who}: {reason}",
                  data={"by": who, "reason": reason, **removal})
        return job_summary(led, led.get_job(job.job_id) or job)


def _remove_outputs(led: Ledger, jt: JobType, job: JobRecord) -> dict[str, Any]:
    """Remove the files the job's tasks recorded, then its preview catalogs."""
    params = jt.validate(job.params)
    storage_options = resolve_storage_options()
    files = []
    for i, st in enumerate(jt.stages):
        if st.outputs is not None:
            found, _ = written_files(st.outputs, params, ((None, r) for r in led.stream_results(job.job_id, i)))
            files += found
    done = remove_unchanged(files, storage_options)
    for staged in _staged(led, jt, job.job_id).values():
        if staged.get("catalog"):
            root = staged["catalog"].rsplit("/", 1)[0]
            fs, path = open_fs(root, storage_options)
            if fs.exists(path):
                fs.rm(path, recursive=True)
            done.setdefault("previews", []).append(redact(root))
    return {"removed": [redact(u) for u in done["removed"]], "gone": [redact(u) for u in done["gone"]],
            "refused": {redact(u): why for u, why in done["refused"].items()}, "previews": done.get("previews", [])}


def review_state(led: Ledger, job: JobRecord) -> dict[str, Any] | None:
    """Where a ``publish=review`` job stands: awaiting (with its previews), approved or rejected, by
    whom, when and why; None for a job that publishes at once."""
    if (job.params or {}).get("publish") != "review":
        return None
    decision = led.last_event(job.job_id, (APPROVED, REJECTED))
    if job.status == JobStatus.AWAITING_REVIEW or decision is None:
        previews = [s["catalog"] for s in _staged(led, get_job(job.job_type), job.job_id).values() if s.get("catalog")]
        return {"state": "awaiting" if job.status == JobStatus.AWAITING_REVIEW else "not staged",
                "previews": [redact(p) for p in previews]}
    data = decision["data"] or {}
    return {"state": "approved" if decision["kind"] == APPROVED else "rejected", "by": data.get("by"),
            "at": utc_iso(decision["at"]), "note": data.get("note"), "reason": data.get("reason")}
