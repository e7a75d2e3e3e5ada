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
    AWAITING_REVIEW = "awaiting_review"  # publish=review: outputs and a preview written, nothing published
    REJECTED = "rejected"  # a reviewer turned the job down; re-submitting it computes nothing
    UNPUBLISHED = "unpublished"  # its STAC items and outputs were taken back; re-submitting computes nothing


#: a finished job: re-submitting it computes nothing
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.AWAITING_REVIEW})
#: a job that will not change again without a new run (or a reviewer's decision)
TERMINAL = FINISHED | {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED, JobStatus.UNPUBLISHED}
#: decisions taken on a job after it ran: re-submitting it computes nothing (``--force`` runs it again)
DECIDED = frozenset({JobStatus.REJECTED, JobStatus.UNPUBLISHED})
#: tasks that `geoproc retry` sets back to pending
RETRYABLE = (TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED)
