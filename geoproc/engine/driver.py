"""The driver: runs one job on a Dask cluster and is the only writer of its ledger rows.

For each *segment* (a stage plus the lineage stages that follow it) the driver plans tasks with
deterministic ids, adds them to the ledger, skips those already COMPLETED, batches the rest into Dask
tasks (lineage = direct edges between batches, so reply i starts when greeting i is done), and writes
outcomes back in batched transactions as they arrive. Between segments it aggregates (fan-in) and
plans the next stage from the result (dynamic fan-out).

A lease with a heartbeat makes a job single-driver: a second submission waits for the first and
returns its result; a driver that died leaves a stale lease that the next run takes over.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .. import ids
from ..errors import JobBusy
from ..ledger import Ledger, owner_token
from ..ledger.store import JobRecord
from ..model import JobType, Stage, StageOutput, TaskSpec
from ..settings import Settings
from . import cluster as cluster_mod
from .worker import Credentials, run_chunk

EventSink = Callable[[str, dict[str, Any]], None]
FINISHED = frozenset({"completed", "completed_with_errors"})


class _Stop(Exception):
    """Internal: the run must stop (cancelled or lease lost)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Chunk:
    stage: int
    items: list[tuple[str, str, dict, str | None]]
    parents: dict[str, Any] = field(default_factory=dict)
    upstream: list[int] = field(default_factory=list)  # indices of chunks this one depends on


class Driver:
    """Runs one job to a terminal (or interrupted) state."""

    def __init__(self, job_type: JobType, params: BaseModel, ledger: Ledger, *, settings: Settings | None = None,
                 cluster: Any = None, workers: int | None = None, force: bool = False, wait: bool = True,
                 storage_options: dict | None = None, on_event: EventSink | None = None,
                 keep_failed: bool = False):
        self.jt, self.params, self.ledger = job_type, params, ledger
        self.settings = settings or Settings()
        self.cluster_spec, self.workers, self.force, self.wait = cluster, workers, force, wait
        # resolved when tasks are about to run: a finished job returned from the ledger needs none
        # (and resolving an Azure AD identity costs a token request)
        self.storage_options = None if storage_options is None else Credentials(storage_options)
        self.keep_failed = keep_failed  # `retry --task`: leave the other failed tasks as they are
        self.emit: EventSink = on_event or (lambda kind, data: None)
        self.job_id = job_type.job_id(params)
        self.owner = owner_token()
        self.executed = 0
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._stop_hb = threading.Event()
        self._n_workers = 1
        self._bbox: list[float] | None = None

    # --- entry -------------------------------------------------------------------------------------------

    def run(self) -> tuple[JobRecord, bool]:
        """Run the job; returns (final job record, whether it came from the ledger without running)."""
        job = self.ledger.get_job(self.job_id)
        volatile = [i for i, st in enumerate(self.jt.stages) if st.volatile]
        if job is not None and job.status in FINISHED and not self.force and not volatile:
            self.emit("cached", {"job_id": self.job_id, "status": job.status})
            return job, True
        self.ledger.create_job(self.job_id, self.jt.name, self.jt.normalized(self.params), len(self.jt.stages))
        followed = self._take_lease()
        if followed is not None:
            return followed, True
        hb = threading.Thread(target=self._heartbeat, name=f"geoproc-heartbeat-{self.job_id[:8]}", daemon=True)
        hb.start()
        try:
            if self.force:
                self.ledger.reset_tasks(self.job_id)
                self.ledger.event(self.job_id, "forced", message="all tasks reset to pending")
            elif volatile:
                self.ledger.reset_tasks(self.job_id, stages=volatile)  # re-list; planned tasks still skip
                if job is not None and job.status in FINISHED:
                    self.keep_failed = True  # failures of a finished job are re-run by `geoproc retry` only
            job = self.ledger.get_job(self.job_id)
            assert job is not None
            now = time.time()
            self.ledger.update_job(self.job_id, status="running", runs=job.runs + 1, started_at=now,
                                   finished_at=None, cancel_requested=False, error=None)
            self.ledger.event(self.job_id, "run_started", message=self.owner, data={"run": job.runs + 1})
            self.emit("started", {"job_id": self.job_id, "run": job.runs + 1})
            status, result, error = self._execute()
        except KeyboardInterrupt:
            self._finish("interrupted", None, "interrupted by signal; run the job again to resume")
            raise
        except BaseException as exc:
            self._finish("failed", None, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._stop_hb.set()
            hb.join(5)
        if status is not None:
            self._finish(status, result, error)
        final = self.ledger.get_job(self.job_id)
        assert final is not None
        return final, False

    def _finish(self, status: str, result: Any, error: str | None) -> None:
        if self._lost.is_set():
            return  # another driver owns the job now; it writes the final state
        self.ledger.update_job(self.job_id, status=status, result=result, error=error, finished_at=time.time(),
                               lease_owner=None, heartbeat_at=None)
        self.ledger.event(self.job_id, f"job_{status}", message=error)
        self.emit("finished", {"job_id": self.job_id, "status": status})

    def _take_lease(self) -> JobRecord | None:
        """Acquire the lease, or wait for the live driver that holds it and return its final record."""
        waited = False
        while not self.ledger.acquire_lease(self.job_id, self.owner, self.settings.lease_ttl):
            job = self.ledger.get_job(self.job_id)
            if job is None:
                continue
            if not self.wait:
                raise JobBusy(f"Job {self.job_id[:12]} is running in another process ({job.lease_owner}); "
                              f"watch it with `geoproc status {self.job_id[:12]}`.")
            if not waited:
                self.emit("following", {"job_id": self.job_id, "owner": job.lease_owner})
                waited = True
            time.sleep(self.settings.follow_poll)
        if waited:
            job = self.ledger.get_job(self.job_id)
            if job is not None and job.terminal:
                self.ledger.release_lease(self.job_id, self.owner)
                return job
        return None

    def _heartbeat(self) -> None:
        while not self._stop_hb.wait(self.settings.heartbeat_interval):
            try:
                ours, cancel = self.ledger.heartbeat(self.job_id, self.owner)
            except Exception:  # noqa: BLE001 - a missed beat is retried on the next tick
                continue
            if not ours:
                self._lost.set()
            if cancel:
                self._cancel.set()

    # --- execution ---------------------------------------------------------------------------------------

    def _execute(self) -> tuple[str | None, Any, str | None]:
        if self.storage_options is None:
            from ..storage import resolve_storage_options

            self.storage_options = Credentials(resolve_storage_options())
        stages = self.jt.stages
        values: list[Any] = [None] * len(stages)
        with cluster_mod.connect(self.cluster_spec, workers=self.workers, settings=self.settings) as client:
            self._n_workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
            info = client.scheduler_info(n_workers=0)
            link = client.dashboard_link if "dashboard" in info.get("services", {}) else None
            self.emit("cluster", {"dashboard": link, "workers": self._n_workers})
            self._client = client
            previous: StageOutput | None = None
            i = 0
            try:
                while i < len(stages):
                    segment = [i]
                    while segment[-1] + 1 < len(stages) and stages[segment[-1] + 1].lineage:
                        segment.append(segment[-1] + 1)
                    self.ledger.update_job(self.job_id, stage=i)
                    self._run_segment(segment, previous)
                    for j in segment:
                        values[j] = self._aggregate(j)
                    counts = self.ledger.counts(self.job_id)
                    bad = sum(counts.get(j, {}).get("failed", 0) + counts.get(j, {}).get("skipped", 0)
                              for j in segment)
                    good = sum(counts.get(j, {}).get("completed", 0) for j in segment)
                    if bad and (self.jt.failure_policy.tolerate == 0 or good == 0):
                        break  # the next stages would plan from a broken result
                    last = segment[-1]
                    previous = StageOutput(values[last], self._results_of(last))
                    i = last + 1
            except _Stop as stop:
                return self._stopped(stop.reason)
        return self._conclude(values)

    def _results_of(self, stage_idx: int) -> Callable[[], Any]:
        return lambda: self.ledger.stream_results(self.job_id, stage_idx)

    def _stopped(self, reason: str) -> tuple[str | None, Any, str | None]:
        if reason == "lost":
            return None, None, None
        self.ledger.cancel_unfinished(self.job_id)
        return "cancelled", None, "cancelled by request"

    def _conclude(self, values: list[Any]) -> tuple[str, Any, str | None]:
        counts = self.ledger.counts(self.job_id)
        total = sum(sum(c.values()) for c in counts.values())
        failed = sum(c.get("failed", 0) + c.get("skipped", 0) + c.get("pending", 0) for c in counts.values())
        status = self.jt.failure_policy.job_status(failed, total)
        if any(sum(c.values()) and not c.get("completed") for c in counts.values()):
            status = "failed"  # a stage that had work and completed none: nothing got through
        if total == 0:
            status = "completed"  # an empty fan-out is a clean, complete job
        result = self.jt.finalize(self.params, values) if self.jt.finalize else values[-1]
        self._record_bbox()
        error = None
        if failed:
            error = f"{failed} of {total} tasks did not complete; see `geoproc tasks {self.job_id[:12]} --status failed`"
            if isinstance(result, dict):  # every job's report names its failures and why
                result = {**result, "failed_tasks": [
                    {"stage": t["stage_name"], "key": t["key"], "code": t["error_code"],
                     "message": t["error_message"], "remediation": t["remediation"]}
                    for t in self.ledger.list_tasks(self.job_id, status="failed", limit=50)]}
        return status, result, error

    def _record_bbox(self) -> None:
        if self._bbox is None:
            return
        job = self.ledger.get_job(self.job_id)
        if job is not None and job.bbox:
            b = job.bbox
            self._bbox = [min(b[0], self._bbox[0]), min(b[1], self._bbox[1]),
                          max(b[2], self._bbox[2]), max(b[3], self._bbox[3])]
        self.ledger.set_bbox(self.job_id, self._bbox)

    def _aggregate(self, stage_idx: int) -> Any:
        stage = self.jt.stages[stage_idx]
        if stage.aggregate is None:
            return None
        value = stage.aggregate(self.params, self.ledger.stream_results(self.job_id, stage_idx))
        self.ledger.set_stage_result(self.job_id, stage_idx, stage.name, value)
        return value

    # --- planning ----------------------------------------------------------------------------------------

    def _plan(self, stage_idx: int, previous: Any) -> list[TaskSpec]:
        stage = self.jt.stages[stage_idx]
        specs = list(stage.plan(self.params, previous))
        seen: set[str] = set()
        for spec in specs:
            if spec.key in seen:
                raise ValueError(f"stage {stage.name!r} planned the key {spec.key!r} twice")
            seen.add(spec.key)
        return specs

    def _tid(self, stage_idx: int, key: str) -> str:
        return ids.task_id(self.job_id, self.jt.stages[stage_idx].name, key)

    def _batch_size(self, stage: Stage, n: int) -> int:
        if stage.heavy:
            return 1
        target = self._n_workers * self.settings.chunks_per_worker
        return max(1, min(self.settings.max_batch, math.ceil(n / target)))

    def _run_segment(self, segment: list[int], previous: StageOutput | None) -> None:
        chunks: list[_Chunk] = []
        chunk_of: dict[str, int] = {}  # pending task id -> index of its chunk
        prev_keys: list[str] | None = None
        for depth, si in enumerate(segment):
            stage = self.jt.stages[si]
            specs = self._plan(si, previous if depth == 0 else prev_keys)
            prev_keys = [sp.key for sp in specs]
            rows: list[dict[str, Any]] = [{"task_id": self._tid(si, sp.key), "job_id": self.job_id, "stage": si, "stage_name": stage.name,
                     "seq": n, "key": sp.key, "handler": stage.handler, "params": sp.params,
                     "parent_id": self._tid(si - 1, sp.parent) if sp.parent is not None else None,
                     "fingerprint": sp.fingerprint}
                    for n, sp in enumerate(specs)]
            self.ledger.add_tasks(rows)
            states = self.ledger.task_states(self.job_id, si)
            changed = [r for r in rows if r["task_id"] in states and states[r["task_id"]][1] != r["fingerprint"]]
            if changed:  # the input behind these tasks changed since they ran
                self.ledger.refresh_tasks(changed)
                self.ledger.event(self.job_id, "inputs_changed", stage=si, data={"tasks": len(changed)})
                for r in changed:
                    states[r["task_id"]] = ("pending", r["fingerprint"])
            skip = {"completed", "failed"} if self.keep_failed else {"completed"}
            rerun_parent = set(chunk_of) if depth else set()  # lineage: a re-run parent re-runs its child
            pending = [r for r in rows if states.get(r["task_id"], ("pending",))[0] not in skip
                       or r["parent_id"] in rerun_parent]
            self.emit("stage", {"stage": si, "name": stage.name, "total": len(rows),
                                "done": len(rows) - len(pending)})
            self.ledger.event(self.job_id, "stage_planned", stage=si,
                              data={"tasks": len(rows), "pending": len(pending)})
            chunks_here = self._chunk_stage(si, stage, pending, chunk_of)
            for c in chunks_here:
                chunks.append(c)
                for item in c.items:
                    chunk_of[item[0]] = len(chunks) - 1
        if chunks:
            self._submit_and_collect(chunks)

    def _chunk_stage(self, si: int, stage: Stage, pending: list[dict], chunk_of: dict[str, int]) -> list[_Chunk]:
        size = self._batch_size(stage, len(pending))
        items = [(r["task_id"], r["key"], r["params"], r["parent_id"]) for r in pending]
        if not stage.lineage:
            return [_Chunk(si, items[k:k + size]) for k in range(0, len(items), size)]
        # Lineage: children of a parent still to run go with their parent's batch (a direct edge);
        # children of completed parents get the stored results as literal inputs.
        by_parent_chunk: dict[int, list] = {}
        stored: list = []
        for it in items:
            pc = chunk_of.get(it[3]) if it[3] else None
            (by_parent_chunk.setdefault(pc, []) if pc is not None else stored).append(it)
        out = [_Chunk(si, group[k:k + size], upstream=[pc])
               for pc, group in by_parent_chunk.items() for k in range(0, len(group), size)]
        if stored:
            results = self.ledger.results([it[3] for it in stored if it[3]])
            for k in range(0, len(stored), size):
                part = stored[k:k + size]
                out.append(_Chunk(si, part, parents={it[3]: results[it[3]] for it in part
                                                     if it[3] in results}))
        return out

    # --- running -----------------------------------------------------------------------------------------

    def _submit_and_collect(self, chunks: list[_Chunk]) -> None:
        import dask

        client = self._client
        run_token = self.owner.rsplit(":", 1)[-1][-6:]
        job = {"job_id": self.job_id, "job_type": self.jt.name}
        done_q: queue.Queue = queue.Queue()
        futures: list[Any] = []
        base_stage = chunks[0].stage
        for c in chunks:
            stage = self.jt.stages[c.stage]
            key = ids.chunk_key(self.jt.name, stage.name, self.job_id, c.items[0][1], run_token)
            # annotations show on the dashboard's task info: which job, stage and tasks a key runs
            with dask.annotate(geoproc_job=self.job_id[:12], geoproc_stage=stage.name,
                               geoproc_tasks=len(c.items)):
                fut = client.submit(run_chunk, stage.handler, job, stage.name, c.items, stage.retry,
                                    self.storage_options, c.parents, *[futures[u] for u in c.upstream],
                                    key=key, priority=c.stage - base_stage, retries=2)
            fut.add_done_callback(done_q.put)
            futures.append(fut)
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
                if self._lost.is_set():
                    raise _Stop("lost")
                if self._cancel.is_set():
                    self._flush(buffer)
                    client.cancel([f for f in futures if f is not None and not f.done()])
                    self.ledger.event(self.job_id, "cancelling", message="cancel requested; stopping")
                    raise _Stop("cancelled")
                if fut is not None:
                    remaining -= 1
                    n = index[fut.key]
                    outs = self._outcomes(fut, chunks[n])
                    futures[n] = None  # dependants keep what they need on the scheduler
                    buffer.extend(outs)
                    self.emit("progress", {"stage": chunks[n].stage, "done": len(outs),
                                           "failed": sum(o["status"] != "completed" for o in outs)})
                if buffer and (len(buffer) >= self.settings.flush_size
                               or time.monotonic() - last_flush >= self.settings.flush_interval or not remaining):
                    self._flush(buffer)
                    last_flush = time.monotonic()
        finally:
            if not self._lost.is_set():
                self._flush(buffer)
            client.cancel([f for f in futures if f is not None and not f.done()])

    def _outcomes(self, fut: Any, chunk: _Chunk) -> list[dict]:
        if fut.status == "finished":
            try:
                return fut.result()
            except Exception as exc:  # noqa: BLE001 - fall through to the erred path
                err: BaseException = exc
        elif fut.status == "cancelled":
            return []
        else:
            err = fut.exception()
        name = type(err).__name__
        code = "WORKER_LOST" if name == "KilledWorker" else "BATCH_ERROR"
        return [{"task_id": it[0], "status": "failed", "attempts": 1, "error_code": code,
                 "error_message": f"{name}: {err}"[:2000],
                 "remediation": "The Dask task running this batch failed; check worker memory and logs, then re-run."}
                for it in chunk.items]

    def _flush(self, buffer: list[dict]) -> None:
        if not buffer:
            return
        if not self.ledger.record_outcomes(buffer, job_id=self.job_id, owner=self.owner):
            self._lost.set()  # another driver took the job over; it will redo what we could not record
            buffer.clear()
            raise _Stop("lost")
        self.executed += sum(1 for o in buffer if o.get("attempts"))
        for o in buffer:
            bb = (o.get("result") or {}).get("bbox_wgs84") if o["status"] == "completed" else None
            if isinstance(bb, (list, tuple)) and len(bb) == 4:
                self._bbox = list(bb) if self._bbox is None else [
                    min(self._bbox[0], bb[0]), min(self._bbox[1], bb[1]),
                    max(self._bbox[2], bb[2]), max(self._bbox[3], bb[3])]
        buffer.clear()
