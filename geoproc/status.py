"""Task and job statuses: one string enum each, shared by the ledger, the engine and every face.

They are ``StrEnum``s, so a status is also the plain string the ledger stores and JSON shows
(``TaskStatus.COMPLETED == "completed"``); code compares against the members, never literals.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where one ledger task stands."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # its parent task did not complete
    CANCELLED = "cancelled"


class JobStatus(StrEnum):
    """Where one job stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


#: a finished job: re-submitting it computes nothing
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS})
#: a job that will not change again without a new run
TERMINAL = FINISHED | {JobStatus.FAILED, JobStatus.CANCELLED}
#: tasks that `geoproc retry` sets back to pending
RETRYABLE = (TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED)
