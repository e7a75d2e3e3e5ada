"""Planning and batching: the stages of a pipeline become ledger tasks, and their pending tasks batches.

A *pipeline* is a stage plus the lineage stages that follow it: task i of a lineage stage consumes
task i of the stage before, so the whole pipeline is submitted at once and reply i starts as soon as
greeting i is done. A *batch* is the engine's unit of submission: ledger tasks of one stage that one
Dask task runs in order. Light tasks are grouped (Dask's scheduler costs about a millisecond per task,
so thousands of tiny tasks must not be thousands of Dask tasks); heavy tasks get a batch each.

Planning is idempotent: tasks have deterministic ids, adding them again leaves existing rows alone,
and only tasks not yet COMPLETED (or whose input changed, by fingerprint) are batched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .. import ids
from ..errors import JobDefinitionError
from ..ledger import Ledger
from ..model import REMAKE, JobType, Stage, StageOutput, TaskSpec, WrittenFile
from ..settings import Settings
from ..status import TaskStatus
from ..storage.outputs import missing_or_changed
from ..storage.urls import redact
from .lease import EventSink
from .worker import Item

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Tasks of one stage that run in one Dask task."""

    stage: int
    items: list[Item]
    parents: dict[str, Any] = field(default_factory=dict)  # stored results of completed parent tasks
    upstream: list[int] = field(default_factory=list)  # indices of the batches producing the other parents


def pipeline_at(stages: Sequence[Stage], first: int) -> list[int]:
    """Indices of the pipeline that starts at stage ``first``: it and the lineage stages right after it."""
    pipeline = [first]
    while pipeline[-1] + 1 < len(stages) and stages[pipeline[-1] + 1].lineage:
        pipeline.append(pipeline[-1] + 1)
    return pipeline


def written_files(outputs: Callable[[Any, dict], Any], params: Any,
                  results: Iterable[tuple[Any, dict | None]]) -> tuple[list[WrittenFile], dict[str, list[Any]]]:
    """The files a stage's completed tasks wrote, each once, and which tasks (``owner``) name each.

    ``results`` are ``(owner, result)`` pairs; ``outputs`` is the stage's declaration.
    """
    owners: dict[str, list[Any]] = {}
    files: list[WrittenFile] = []
    for owner, result in results:
        for url, size, sha in outputs(params, result or {}):
            if url not in owners:
                files.append((url, size, sha))
            owners.setdefault(url, []).append(owner)
    return files, owners


def batch_size(stage: Stage, n: int, n_workers: int, settings: Settings) -> int:
    """Tasks per batch for ``n`` pending tasks: one for heavy stages, else about
    ``batches_per_worker`` batches per worker, at most ``max_batch`` tasks each."""
    if stage.heavy:
        return 1
    target = n_workers * settings.batches_per_worker
    return max(1, min(settings.max_batch, math.ceil(n / target)))


class Planner:
    """Plans a job's pipelines into the ledger and cuts their pending tasks into batches."""

    def __init__(self, ledger: Ledger, job_type: JobType, params: BaseModel, job_id: str, *,
                 settings: Settings, keep_failed: bool, emit: EventSink,
                 storage_options: Mapping[str, Any] | None = None, verify: bool = False):
        self.ledger, self.jt, self.params, self.job_id = ledger, job_type, params, job_id
        self.settings = settings
        self.storage_options = storage_options or {}
        self.verify = verify  # re-hash the outputs of completed tasks, not just check their sizes
        self.keep_failed = keep_failed  # `retry --task`: leave the other failed tasks as they are
        self.emit = emit

    def batches(self, pipeline: list[int], previous: StageOutput | None, n_workers: int) -> list[Batch]:
        """Plan every stage of ``pipeline``, record the tasks, and return the batches still to run.

        A lineage stage is planned from the keys of the stage before; a child whose parent runs again
        runs again too, in a batch that depends on its parent's batch.
        """
        batches: list[Batch] = []
        batch_of: dict[str, int] = {}  # pending task id -> index of its batch
        prev_keys: list[str] | None = None
        for depth, si in enumerate(pipeline):
            stage = self.jt.stages[si]
            specs = self._plan(si, previous if depth == 0 else prev_keys)
            prev_keys = [sp.key for sp in specs]
            rows = self._rows(si, stage, specs)
            self.ledger.add_tasks(rows)
            rerun_parent = set(batch_of) if depth else set()  # lineage: a re-run parent re-runs its child
            pending = self._pending(si, rows, rerun_parent)
            self.emit("stage", {"stage": si, "name": stage.name, "total": len(rows),
                                "done": len(rows) - len(pending)})
            self.ledger.event(self.job_id, "stage_planned", stage=si,
                              data={"tasks": len(rows), "pending": len(pending)})
            for b in self._batch_stage(si, stage, pending, batch_of, n_workers):
                batches.append(b)
                for item in b.items:
                    batch_of[item[0]] = len(batches) - 1
        return batches

    def _plan(self, stage_idx: int, previous: Any) -> list[TaskSpec]:
        stage = self.jt.stages[stage_idx]
        specs = list(stage.plan(self.params, previous))
        seen: set[str] = set()
        for spec in specs:
            if spec.key in seen:
                raise JobDefinitionError(f"Stage {stage.name!r} of job type {self.jt.name!r} planned the key "
                                         f"{spec.key!r} twice; task keys must be unique within a stage.")
            seen.add(spec.key)
        return specs

    def _tid(self, stage_idx: int, key: str) -> str:
        return ids.task_id(self.job_id, self.jt.stages[stage_idx].name, key)

    def _rows(self, si: int, stage: Stage, specs: list[TaskSpec]) -> list[dict[str, Any]]:
        return [{"task_id": self._tid(si, sp.key), "job_id": self.job_id, "stage": si, "stage_name": stage.name,
                 "seq": n, "key": sp.key, "handler": stage.handler, "params": sp.params,
                 "parent_id": self._tid(si - 1, sp.parent) if sp.parent is not None else None,
                 "fingerprint": sp.fingerprint}
                for n, sp in enumerate(specs)]

    def _pending(self, si: int, rows: list[dict[str, Any]], rerun_parent: set[str]) -> list[dict[str, Any]]:
        """The rows that must run: not yet completed, input changed since, or a parent that runs again."""
        states = self.ledger.task_states(self.job_id, si)
        self._drop_unplanned(si, states, rows)
        changed = [r for r in rows if r["task_id"] in states and states[r["task_id"]][1] != r["fingerprint"]]
        if changed:  # the input behind these tasks changed since they ran
            self.ledger.refresh_tasks(changed)
            self.ledger.event(self.job_id, "inputs_changed", stage=si, data={"tasks": len(changed)})
            log.info("Job %s stage %d: %d tasks' inputs changed; they run again", self.job_id[:12], si,
                     len(changed))
            for r in changed:
                states[r["task_id"]] = (TaskStatus.PENDING, r["fingerprint"])
        outputs = self.jt.stages[si].outputs
        remake = self._check_outputs(si, outputs, states) if outputs is not None else set()
        skip = {TaskStatus.COMPLETED, TaskStatus.FAILED} if self.keep_failed else {TaskStatus.COMPLETED}
        pending = [r for r in rows if states.get(r["task_id"], (TaskStatus.PENDING,))[0] not in skip
                   or r["parent_id"] in rerun_parent]
        for r in pending:
            if r["task_id"] in remake:  # its earlier output is damaged: the handler must not keep it
                r["params"] = {**r["params"], REMAKE: remake[r["task_id"]] or True}
        return pending

    def _check_outputs(self, si: int, outputs: Callable[[Any, dict], Any], states: dict[str, Any]) -> dict[str, Any]:
        """Put back to pending the completed tasks whose output files are gone or changed.

        The ledger says what was done; the storage says whether it is still there. A deleted COG is
        made again (and the lineage tasks after it, such as its STAC item, run again with it).
        Returns task id -> the result it recorded, which the handler receives as ``params[REMAKE]``:
        it makes the same output again (the same revision), not a new one.
        """
        stage = self.jt.stages[si]
        done = [tid for tid, (status, _) in states.items() if status == TaskStatus.COMPLETED]
        earlier = self.ledger.results(done)
        files, owners = written_files(outputs, self.params, earlier.items())
        if not files:
            return {}
        bad = missing_or_changed(files, self.storage_options, verify=self.verify)
        if not bad:
            return {}
        redo = sorted({tid for url in bad for tid in owners[url]})
        self.ledger.reset_tasks(self.job_id, task_ids=redo)
        for tid in redo:
            states[tid] = (TaskStatus.PENDING, states[tid][1])
        url, why = min(bad.items(), key=lambda kv: str(kv[0]))
        url = url[-1] if isinstance(url, tuple) else url
        self.ledger.event(self.job_id, "outputs_changed", stage=si,
                          data={"tasks": len(redo), "files": len(bad), "first": f"{redact(url)}: {why}"})
        log.info("Job %s stage %s: %d outputs missing or changed; their tasks run again", self.job_id[:12],
                 stage.name, len(bad))
        self.emit("notice", {"message": f"{stage.name}: {len(bad)} output(s) missing or changed since their task "
                                        f"completed (e.g. {redact(url)}: {why}); making them again"})
        return {tid: earlier.get(tid) for tid in redo}

    def _drop_unplanned(self, si: int, states: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Forget the tasks an earlier run planned that this plan no longer has (their input vanished).

        They are no longer part of the job: left in the ledger they would count as done (or, reset by
        ``--force``, stay pending for ever) although nothing will run them again. Their lineage
        children go with them; the events keep the trace.
        """
        gone = states.keys() - {r["task_id"] for r in rows}
        if not gone:
            return
        dropped = self.ledger.drop_tasks(self.job_id, sorted(gone))
        for tid in gone:
            del states[tid]
        stage = self.jt.stages[si].name
        self.ledger.event(self.job_id, "tasks_dropped", stage=si, data={"tasks": len(gone), "with_children": dropped})
        log.info("Job %s stage %s: %d tasks are no longer planned (their inputs are gone); dropped", self.job_id[:12],
                 stage, len(gone))
        self.emit("notice", {"message": f"{stage}: {len(gone)} task(s) of an earlier run dropped: their inputs are gone"})

    def _batch_stage(self, si: int, stage: Stage, pending: list[dict], batch_of: dict[str, int],
                     n_workers: int) -> list[Batch]:
        size = batch_size(stage, len(pending), n_workers, self.settings)
        items: list[Item] = [(r["task_id"], r["key"], r["params"], r["parent_id"]) for r in pending]
        if not stage.lineage:
            return [Batch(si, items[k:k + size]) for k in range(0, len(items), size)]
        # Lineage: children of a parent still to run go with their parent's batch (a direct edge);
        # children of completed parents get the stored results as literal inputs.
        by_parent_batch: dict[int, list[Item]] = {}
        stored: list[Item] = []
        for it in items:
            pb = batch_of.get(it[3]) if it[3] else None
            (by_parent_batch.setdefault(pb, []) if pb is not None else stored).append(it)
        out = [Batch(si, group[k:k + size], upstream=[pb])
               for pb, group in by_parent_batch.items() for k in range(0, len(group), size)]
        if stored:
            results = self.ledger.results([it[3] for it in stored if it[3]])
            for k in range(0, len(stored), size):
                part = stored[k:k + size]
                out.append(Batch(si, part, parents={it[3]: results[it[3]] for it in part
                                                    if it[3] in results}))
        return out
