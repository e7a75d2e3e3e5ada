"""What runs inside a Dask task: one batch of ledger tasks, each with its own retries.

The functions here run on worker processes. They are handed the handler function itself (Dask
pickles a module-level function by reference), so the engine needs no job registry; and they know
nothing of the ledger: a batch returns one outcome dict per task, and the driver records them.

A handler that catches an exception and carries on says so with ``log.warning(..., exc_info=True)``.
While a batch runs, such records from ``geoproc.*`` loggers are counted (:class:`SwallowedErrors`) and
returned with the outcomes, so the driver can count them in the job's events: a fallback that fires
on every file shows up in the ledger instead of only in a worker's log.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import UPSTREAM_FAILED
from ..model import RetryPolicy, TaskContext
from ..status import TaskStatus
from ..storage.faults import INVALID, TRANSIENT, classify, forget_remote_state

# (task_id, key, params, parent_task_id)
Item = tuple[str, str, dict[str, Any], str | None]
Handler = Callable[[dict[str, Any], TaskContext], dict[str, Any]]

log = logging.getLogger(__name__)

MAX_SWALLOWED_MESSAGES = 5  # first lines of swallowed exceptions a batch sends back (the count is exact)


@dataclass
class BatchResult:
    """What one batch sends back: an outcome per task, and the exceptions its tasks logged and survived."""

    outcomes: list[dict[str, Any]]
    swallowed: int = 0
    swallowed_messages: list[str] = field(default_factory=list)


class SwallowedErrors(logging.Handler):
    """Counts WARNING-or-worse records with ``exc_info`` that ``geoproc.*`` code logs on one thread.

    Only the thread that runs the batch is counted: a worker with several threads runs other batches
    beside it, whose records are theirs.
    """

    def __init__(self, limit: int = MAX_SWALLOWED_MESSAGES):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.limit = limit
        self.count = 0
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.thread != self.thread:
            return
        self.count += 1
        if len(self.messages) < self.limit:
            exc = record.exc_info[1]
            what = f" ({first_line(exc)})" if exc is not None else ""
            self.messages.append(f"{record.name}: {_first(record.getMessage())}{what}"[:300])


def _first(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``: short enough for a ledger event, and free of tracebacks."""
    return f"{type(exc).__name__}: {_first(str(exc))}"[:limit]


@contextmanager
def counting_swallowed() -> Iterator[SwallowedErrors]:
    """Count the swallowed exceptions ``geoproc.*`` loggers report inside the block."""
    counter = SwallowedErrors()
    root = logging.getLogger("geoproc")
    root.addHandler(counter)
    try:
        yield counter
    finally:
        root.removeHandler(counter)


class Credentials(dict):
    """Storage options shipped with each batch; a dict whose repr never shows its values.

    Dask may log a task's arguments when it fails; credentials must not appear there.
    """

    def __repr__(self) -> str:
        return f"Credentials({', '.join(self)}: <redacted>)"

    __str__ = __repr__


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_task(handler: Handler, item: Item, job: dict[str, str], stage: str, retry: RetryPolicy,
             storage_options: dict, predecessor: dict | None, worker: str) -> dict[str, Any]:
    """Run one task with retries; never raises (the outcome says what happened)."""
    task_id, key, params, _ = item
    started = time.time()
    attempt = 0
    while True:
        attempt += 1
        ctx = TaskContext(job_id=job["job_id"], job_type=job["job_type"], stage=stage, task_id=task_id,
                          key=key, attempt=attempt, predecessor=predecessor, storage_options=storage_options)
        try:
            result = handler(params, ctx)
            return {"task_id": task_id, "status": TaskStatus.COMPLETED, "result": result, "attempts": attempt,
                    "worker": worker, "started_at": started, "finished_at": time.time()}
        except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome
            kind, code, remediation = classify(exc)
            if kind == TRANSIENT:
                # GDAL remembers a file it could not reach as missing or unreadable, in this process:
                # forget it before the next attempt, and before later tasks on this worker.
                if attempt < retry.attempts:
                    log.info("Task %s: %s on attempt %d; retrying", task_id, code, attempt)
                    time.sleep(retry.delay(attempt, random.random()))
                    forget_remote_state()
                    continue
                forget_remote_state()
            tb = "".join(traceback.format_exception(exc))[-4000:]
            return {"task_id": task_id, "status": TaskStatus.FAILED, "result": None, "attempts": attempt,
                    "error_kind": kind, "error_code": code, "error_message": f"{type(exc).__name__}: {exc}"[:2000],
                    "remediation": remediation, "traceback": tb if kind != INVALID else tb[-1500:],
                    "worker": worker, "started_at": started, "finished_at": time.time()}


def run_batch(handler: Handler, job: dict[str, str], stage: str, items: list[Item], retry: RetryPolicy,
              storage_options: dict, parents: dict[str, Any], *upstream: BatchResult) -> BatchResult:
    """Run a batch of tasks of one stage in order.

    ``parents`` holds stored results of already-completed parent tasks; ``upstream`` are the results
    of the batches (Dask dependencies) that produce the other parents in this run.
    """
    with counting_swallowed() as swallowed:
        outcomes = _run_items(handler, job, stage, items, retry, storage_options, parents, upstream)
    return BatchResult(outcomes, swallowed.count, swallowed.messages)


def _run_items(handler: Handler, job: dict[str, str], stage: str, items: list[Item], retry: RetryPolicy,
               storage_options: dict, parents: dict[str, Any], upstream: tuple[BatchResult, ...]) -> list[dict]:
    worker = _worker_name()
    upstream_by_id = {o["task_id"]: o for up in upstream for o in up.outcomes}
    out = []
    for item in items:
        parent_id = item[3]
        predecessor = None
        if parent_id is not None:
            if parent_id in parents:
                predecessor = parents[parent_id]
            else:
                up = upstream_by_id.get(parent_id)
                if up is None or up["status"] != TaskStatus.COMPLETED:
                    out.append({"task_id": item[0], "status": TaskStatus.SKIPPED, "attempts": 0,
                                "error_code": UPSTREAM_FAILED,
                                "error_message": f"parent task {parent_id} did not complete",
                                "remediation": "Fix the parent task's failure; this task re-runs with it.",
                                "worker": worker})
                    continue
                predecessor = up["result"]
        out.append(run_task(handler, item, job, stage, retry, storage_options, predecessor, worker))
    return out
