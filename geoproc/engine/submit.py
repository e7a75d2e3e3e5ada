"""Submission: a pipeline's batches go to the Dask cluster, and their outcomes into the ledger.

Batches are submitted together, lineage batches with a direct edge to the batch of their parents, so
the scheduler runs reply i as soon as greeting i is done. Outcomes are written as they arrive, in
batched transactions (``flush_size`` outcomes or every ``flush_interval`` seconds), fenced by the
job's lease: a driver that lost its lease writes nothing more. A batch whose Dask task itself failed
(its worker died, or it could not be run) fails all its tasks with ``WORKER_LOST`` / ``BATCH_ERROR``.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Mapping
from typing import Any

from .. import ids
from ..bbox import union
from ..errors import BATCH_ERROR, WORKER_LOST
from ..ledger import Ledger
from ..model import JobType
from ..settings import Settings
from ..status import TaskStatus
from .batching import Batch
from .lease import EventSink, Lease, StopRun
from .worker import BatchResult, Handler, run_batch

log = logging.getLogger(__name__)

BATCH_REMEDIATION = "The Dask task running this batch failed; check worker memory and logs, then re-run."


class Submission:
    """Runs the batches of one job's pipelines on a cluster and records what they did.

    ``executed`` counts the tasks that really ran (skipped children have no attempt); ``bbox`` is the
    union of the ``bbox_wgs84`` of the completed tasks' results.
    """

    def __init__(self, client: Any, ledger: Ledger, job_type: JobType, job_id: str, lease: Lease, *,
                 handlers: Mapping[str, Handler], storage_options: dict, settings: Settings, emit: EventSink,
                 params: Any = None):
        self.client, self.ledger, self.jt, self.job_id, self.lease = client, ledger, job_type, job_id, lease
        self.params = params  # the stages' ``outputs`` read them to name the files a task wrote
        self.handlers, self.storage_options, self.settings, self.emit = handlers, storage_options, settings, emit
        self.executed = 0
        self.bbox: list[float] | None = None

    def run(self, batches: list[Batch]) -> None:
        """Submit ``batches`` and record their outcomes until all are done.

        Raises:
            StopRun: the lease was lost, or a cancel was requested (running batches are cancelled).
        """
        futures: list[Any] = self._submit(batches)
        done_q: queue.Queue = queue.Queue()
        for fut in futures:
            fut.add_done_callback(done_q.put)
        index = {f.key: n for n, f in enumerate(futures)}
        remaining = len(futures)
        buffer: list[dict] = []
        last_flush = time.monotonic()
        try:
            while remaining:
                try:
                    fut = done_q.get(timeout=0.2)
                except queue.Empty:
                    fut = None
                if self.lease.lost.is_set():
                    raise StopRun("lost")
                if self.lease.cancel.is_set():
                    self._flush(buffer)
                    self.client.cancel([f for f in futures if f is not None and not f.done()])
                    self.ledger.event(self.job_id, "cancelling", message="cancel requested; stopping")
                    raise StopRun("cancelled")
                if fut is not None:
                    remaining -= 1
                    n = index[fut.key]
                    outs = self._written(self._outcomes(fut, batches[n]), batches[n].stage)
                    futures[n] = None  # dependants keep what they need on the scheduler
                    buffer.extend(outs)
                    self.emit("progress", {"stage": batches[n].stage, "done": len(outs),
                                           "failed": sum(o["status"] != TaskStatus.COMPLETED for o in outs)})
                if buffer and (len(buffer) >= self.settings.flush_size
                               or time.monotonic() - last_flush >= self.settings.flush_interval or not remaining):
                    self._flush(buffer)
                    last_flush = time.monotonic()
        finally:
            if not self.lease.lost.is_set():
                self._flush(buffer)
            self.client.cancel([f for f in futures if f is not None and not f.done()])

    def _submit(self, batches: list[Batch]) -> list[Any]:
        import dask  # imported with the first submission: faces that never run a job stay light

        job = {"job_id": self.job_id, "job_type": self.jt.name}
        futures: list[Any] = []
        base_stage = batches[0].stage
        for b in batches:
            stage = self.jt.stages[b.stage]
            key = ids.batch_key(self.jt.name, stage.name, self.job_id, b.items[0][1], self.lease.run_token)
            # annotations show on the dashboard's task info: which job, stage and tasks a key runs
            with dask.annotate(geoproc_job=self.job_id[:12], geoproc_stage=stage.name,
                               geoproc_tasks=len(b.items)):
                fut = self.client.submit(run_batch, self.handlers[stage.handler], job, stage.name, b.items,
                                         stage.retry, self.storage_options, b.parents,
                                         *[futures[u] for u in b.upstream],
                                         key=key, priority=b.stage - base_stage, retries=2)
            futures.append(fut)
        return futures

    def _written(self, outcomes: list[dict], stage_idx: int) -> list[dict]:
        """Name on each completed outcome the files its task wrote (recorded with it in the ledger)."""
        outputs = self.jt.stages[stage_idx].outputs
        if outputs is not None:
            for o in outcomes:
                if o["status"] == TaskStatus.COMPLETED and o.get("result"):  # files with a checksum: revisions
                    o["written"] = [f for f in outputs(self.params, o["result"]) if f[2]]
        return outcomes

    def _outcomes(self, fut: Any, batch: Batch) -> list[dict]:
        if fut.status == "finished":
            try:
                res: BatchResult = fut.result()
            except Exception as exc:  # noqa: BLE001 - fall through to the erred path
                err: BaseException = exc
            else:
                if res.swallowed:
                    self._record_swallowed(batch, res)
                return res.outcomes
        elif fut.status == "cancelled":
            return []
        else:
            err = fut.exception()
        name = type(err).__name__
        code = WORKER_LOST if name == "KilledWorker" else BATCH_ERROR
        log.warning("Batch %s of job %s failed (%s): %s", fut.key, self.job_id[:12], code, name)
        return [{"task_id": it[0], "status": TaskStatus.FAILED, "attempts": 1, "error_code": code,
                 "error_message": f"{name}: {err}"[:2000], "remediation": BATCH_REMEDIATION}
                for it in batch.items]

    def _record_swallowed(self, batch: Batch, res: BatchResult) -> None:
        """A job event for the exceptions a batch's tasks logged and carried on from."""
        stage = self.jt.stages[batch.stage].name
        log.warning("Job %s stage %s: %d exceptions were logged and survived in a batch of %d tasks; first: %s",
                    self.job_id[:12], stage, res.swallowed, len(batch.items),
                    res.swallowed_messages[0] if res.swallowed_messages else "?")
        self.ledger.event(self.job_id, "swallowed_errors", stage=batch.stage, task_id=batch.items[0][0],
                          message=res.swallowed_messages[0] if res.swallowed_messages else None,
                          data={"count": res.swallowed, "messages": res.swallowed_messages,
                                "tasks": len(batch.items)})

    def _flush(self, buffer: list[dict]) -> None:
        if not buffer:
            return
        if not self.ledger.record_outcomes(buffer, job_id=self.job_id, owner=self.lease.owner):
            self.lease.lost.set()  # another driver took the job over; it will redo what we could not record
            buffer.clear()
            raise StopRun("lost")
        self.executed += sum(1 for o in buffer if o.get("attempts"))
        for o in buffer:
            bb = (o.get("result") or {}).get("bbox_wgs84") if o["status"] == TaskStatus.COMPLETED else None
            if isinstance(bb, (list, tuple)) and len(bb) == 4:
                self.bbox = union([self.bbox, bb])
        buffer.clear()
