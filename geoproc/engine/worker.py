"""What runs inside a Dask task: one batch of ledger tasks, each with its own retries.

The functions here run on worker processes. They know the handler registry and nothing of the
ledger: they return one outcome dict per task, and the driver records them.
"""

from __future__ import annotations

import os
import random
import socket
import time
import traceback
from typing import Any

from ..model import RetryPolicy, TaskContext
from ..storage.faults import forget_remote_state
from .retry import INVALID, TRANSIENT, classify

# (task_id, key, params, parent_task_id)
Item = tuple[str, str, dict[str, Any], str | None]


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


def run_task(handler, item: Item, job: dict[str, str], stage: str, retry: RetryPolicy,
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
            return {"task_id": task_id, "status": "completed", "result": result, "attempts": attempt,
                    "worker": worker, "started_at": started, "finished_at": time.time()}
        except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome
            kind, code, remediation = classify(exc)
            if kind == TRANSIENT:
                # GDAL remembers a file it could not reach as missing or unreadable, in this process:
                # forget it before the next attempt, and before later tasks on this worker.
                if attempt < retry.attempts:
                    time.sleep(retry.delay(attempt, random.random()))
                    forget_remote_state()
                    continue
                forget_remote_state()
            tb = "".join(traceback.format_exception(exc))[-4000:]
            return {"task_id": task_id, "status": "failed", "result": None, "attempts": attempt,
                    "error_kind": kind, "error_code": code, "error_message": f"{type(exc).__name__}: {exc}"[:2000],
                    "remediation": remediation, "traceback": tb if kind != INVALID else tb[-1500:],
                    "worker": worker, "started_at": started, "finished_at": time.time()}


def run_chunk(handler_name: str, job: dict[str, str], stage: str, items: list[Item], retry: RetryPolicy,
              storage_options: dict, parents: dict[str, Any], *upstream: list[dict[str, Any]]) -> list[dict]:
    """Run a batch of tasks of one stage in order.

    ``parents`` holds stored results of already-completed parent tasks; ``upstream`` are the outcome
    lists of the batches (Dask dependencies) that produce the other parents in this run.
    """
    from ..jobs import ALL_HANDLERS

    handler = ALL_HANDLERS[handler_name]
    worker = _worker_name()
    upstream_by_id = {o["task_id"]: o for outs in upstream for o in outs}
    out = []
    for item in items:
        parent_id = item[3]
        predecessor = None
        if parent_id is not None:
            if parent_id in parents:
                predecessor = parents[parent_id]
            else:
                up = upstream_by_id.get(parent_id)
                if up is None or up["status"] != "completed":
                    out.append({"task_id": item[0], "status": "skipped", "attempts": 0,
                                "error_code": "UPSTREAM_FAILED",
                                "error_message": f"parent task {parent_id} did not complete",
                                "remediation": "Fix the parent task's failure; this task re-runs with it.",
                                "worker": worker})
                    continue
                predecessor = up["result"]
        out.append(run_task(handler, item, job, stage, retry, storage_options, predecessor, worker))
    return out
