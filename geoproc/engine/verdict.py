"""The job verdict: how a run ends, decided from the ledger's task counts and the job's failure policy.

* A pipeline whose tasks failed stops the job early when the policy tolerates no failure, or when
  nothing in it succeeded: the next stages would plan from a broken result.
* At the end, failed, skipped and still-pending tasks count against the job; the failure policy says
  whether that is ``completed_with_errors`` or ``failed``. A stage that had work and completed none
  fails the job (nothing got through); a job with no tasks at all (an empty fan-out) is complete.
* The result of a job with failures names them (stage, key, code, message, remediation), up to 50.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from ..bbox import union
from ..ledger import Ledger
from ..model import STAGED, FailurePolicy, JobType
from ..status import JobStatus, TaskStatus

Counts = dict[int, dict[str, int]]  # stage -> status -> number of tasks

MAX_LISTED_FAILURES = 50  # failed tasks a job's result names


def pipeline_broken(counts: Counts, pipeline: Iterable[int], policy: FailurePolicy) -> bool:
    """Whether the stages after ``pipeline`` must not run: it has failures the policy cannot take."""
    stages = list(pipeline)
    bad = sum(counts.get(j, {}).get(TaskStatus.FAILED, 0) + counts.get(j, {}).get(TaskStatus.SKIPPED, 0)
              for j in stages)
    good = sum(counts.get(j, {}).get(TaskStatus.COMPLETED, 0) for j in stages)
    return bool(bad) and (policy.tolerate == 0 or good == 0)


def job_status(counts: Counts, policy: FailurePolicy) -> tuple[str, int, int]:
    """(job status, tasks that did not complete, all tasks) from the task counts of every stage."""
    total = sum(sum(c.values()) for c in counts.values())
    failed = sum(c.get(TaskStatus.FAILED, 0) + c.get(TaskStatus.SKIPPED, 0) + c.get(TaskStatus.PENDING, 0)
                 for c in counts.values())
    status = policy.job_status(failed, total)
    if any(sum(c.values()) and not c.get(TaskStatus.COMPLETED) for c in counts.values()):
        status = JobStatus.FAILED  # a stage that had work and completed none: nothing got through
    if total == 0:
        status = JobStatus.COMPLETED  # an empty fan-out is a clean, complete job
    return status, failed, total


def conclude(ledger: Ledger, job_type: JobType, params: BaseModel, job_id: str, values: list[Any],
             bbox: list[float] | None) -> tuple[str, Any, str | None]:
    """(status, result, error) of a run that went through all it could; records the job's footprint.

    ``values`` are the stages' aggregates (the job result is the last one unless the job type has a
    ``finalize``); ``bbox`` is the union of this run's task footprints, added to earlier runs' one.
    """
    status, failed, total = job_status(ledger.counts(job_id), job_type.failure_policy)
    result = job_type.finalize(params, values) if job_type.finalize else values[-1]
    record_bbox(ledger, job_id, bbox)
    error = None
    if failed:
        error = f"{failed} of {total} tasks did not complete; see `geoproc tasks {job_id[:12]} --status failed`"
        if isinstance(result, dict):  # every job's report names its failures and why
            result = {**result, "failed_tasks": [
                {"stage": t["stage_name"], "key": t["key"], "code": t["error_code"],
                 "message": t["error_message"], "remediation": t["remediation"]}
                for t in ledger.list_tasks(job_id, status=TaskStatus.FAILED, limit=MAX_LISTED_FAILURES)]}
    return held_for_review(ledger, job_id, status, values), result, error


#: ledger event kinds of review decisions (written by :mod:`geoproc.lifecycle`)
APPROVED, REJECTED = "review_approved", "review_rejected"


def staged_digests(values: Iterable[Any]) -> list[str]:
    """The digests of what the stages of a ``publish=review`` run staged (empty for other runs)."""
    return [v[STAGED]["digest"] for v in values if isinstance(v, dict) and isinstance(v.get(STAGED), dict)]


def held_for_review(ledger: Ledger, job_id: str, status: str, values: list[Any]) -> str:
    """``awaiting_review`` for a finished run that staged its publishing, unless a reviewer already
    approved exactly what it staged (a re-run that made nothing new stays published)."""
    digests = staged_digests(values)
    if not digests or status not in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS):
        return status
    decision = ledger.last_event(job_id, (APPROVED, REJECTED))
    if decision and decision["kind"] == APPROVED and (decision["data"] or {}).get("digests") == digests:
        return status
    return JobStatus.AWAITING_REVIEW


def record_bbox(ledger: Ledger, job_id: str, bbox: list[float] | None) -> None:
    """Store the job's footprint: this run's union with what earlier runs stored."""
    if bbox is None:
        return
    job = ledger.get_job(job_id)
    ledger.set_bbox(job_id, union([job.bbox if job is not None else None, bbox]))
