"""The driver: runs one job on a Dask cluster and is the only writer of its ledger rows.

It orchestrates four named parts:

* :mod:`.lease` — one live driver per job: take (or follow, or take over) the lease, keep it with a
  heartbeat, notice cancel requests;
* :mod:`.batching` — plan each *pipeline* (a stage plus the lineage stages that follow it) into ledger
  tasks with deterministic ids, skip those already COMPLETED, and cut the rest into *batches*;
* :mod:`.submit` — run the batches on the cluster (lineage = direct edges between batches, so reply i
  starts when greeting i is done) and write outcomes back in batched transactions as they arrive;
* :mod:`.verdict` — decide between pipelines whether the job can go on, and at the end how it ended.

Between pipelines the driver aggregates (fan-in) and plans the next stage from the result (dynamic
fan-out). A second submission of a running job waits for the first and returns its result; a driver
that died leaves a stale lease that the next run takes over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import JobNotFound
from ..ledger import JobRecord, Ledger
from ..model import JobType, StageOutput
from ..settings import Settings
from ..status import DECIDED, FINISHED, JobStatus
from ..storage import resolve_storage_options
from ..storage.outputs import missing_or_changed
from . import cluster as cluster_mod
from . import verdict
from .batching import Planner, pipeline_at, written_files
from .lease import EventSink, Lease, StopRun
from .submit import Submission
from .worker import Credentials, Handler

log = logging.getLogger(__name__)

Outcome = tuple[str | None, Any, str | None]  # (job status or None when another driver took over, result, error)


class Driver:
    """Runs one job to a terminal (or interrupted) state.

    ``handlers`` maps each stage's handler name to its function; the caller (the API) looks them up in
    the job registry, so the engine itself never imports the jobs.
    """

    def __init__(self, job_type: JobType, params: BaseModel, ledger: Ledger, *,
                 handlers: Mapping[str, Handler], settings: Settings | None = None,
                 cluster: Any = None, workers: int | None = None, force: bool = False, verify: bool = False,
                 wait: bool = True,
                 storage_options: dict | None = None, on_event: EventSink | None = None,
                 keep_failed: bool = False):
        self.jt, self.params, self.ledger = job_type, params, ledger
        self.handlers = dict(handlers)
        self.settings = settings or Settings()
        self.cluster_spec, self.workers, self.force, self.wait = cluster, workers, force, wait
        self.verify = verify  # re-hash completed tasks' outputs, not just check that they are there
        # resolved when tasks are about to run: a finished job returned from the ledger needs none
        # (and resolving an Azure AD identity costs a token request)
        self.storage_options = None if storage_options is None else Credentials(storage_options)
        self.keep_failed = keep_failed  # `retry --task`: leave the other failed tasks as they are
        self.emit: EventSink = on_event or (lambda kind, data: None)
        self.job_id = job_type.job_id(params)
        self.lease = Lease(ledger, self.job_id, self.settings, self.emit)
        self.executed = 0

    @property
    def owner(self) -> str:
        """This driver's lease owner token (host, pid, start time)."""
        return self.lease.owner

    # --- entry -------------------------------------------------------------------------------------------

    def run(self) -> tuple[JobRecord, bool]:
        """Run the job; returns (final job record, whether it came from the ledger without running)."""
        job = self.ledger.get_job(self.job_id)
        volatile = [i for i, st in enumerate(self.jt.stages) if st.volatile]
        if job is not None and job.status in FINISHED and not self.force and not volatile and self._outputs_intact():
            self.emit("cached", {"job_id": self.job_id, "status": job.status})
            return job, True
        if job is not None and job.status in DECIDED and not self.force:
            self.emit("cached", {"job_id": self.job_id, "status": job.status})  # a decision; --force runs it again
            return job, True
        self.ledger.create_job(self.job_id, self.jt.name, self.jt.normalized(self.params), len(self.jt.stages))
        followed = self.lease.take(wait=self.wait)
        if followed is not None:
            return followed, True
        self.lease.start_heartbeat()
        try:
            self._reset(volatile, finished=job is not None and job.status in FINISHED)
            run = self._job().runs + 1
            self.ledger.update_job(self.job_id, status=JobStatus.RUNNING, runs=run, started_at=time.time(),
                                   finished_at=None, cancel_requested=False, error=None)
            self.ledger.event(self.job_id, "run_started", message=self.owner, data={"run": run})
            self.emit("started", {"job_id": self.job_id, "run": run})
            log.info("Job %s (%s) run %d started by %s", self.job_id[:12], self.jt.name, run, self.owner)
            status, result, error = self._execute()
        except KeyboardInterrupt:
            self._finish(JobStatus.INTERRUPTED, None, "interrupted by signal; run the job again to resume")
            raise
        except BaseException as exc:
            self._finish(JobStatus.FAILED, None, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.lease.stop_heartbeat()
        if status is not None:
            self._finish(status, result, error)
        return self._job(), False

    def _outputs_intact(self) -> bool:
        """Whether every file the job's completed tasks wrote is still there as recorded.

        Only then is a finished job returned from the ledger; otherwise it runs, and the planner makes
        again what is missing. Jobs whose stages write no checked files answer at once.
        """
        checked = [(i, st.outputs) for i, st in enumerate(self.jt.stages) if st.outputs is not None]
        if not checked:
            return True
        if self.storage_options is None:
            self.storage_options = Credentials(resolve_storage_options())
        for i, outputs in checked:
            files, _ = written_files(outputs, self.params,
                                     ((None, r) for r in self.ledger.stream_results(self.job_id, i)))
            if files and missing_or_changed(files, self.storage_options, verify=self.verify):
                return False
        return True

    def _job(self) -> JobRecord:
        job = self.ledger.get_job(self.job_id)
        if job is None:
            raise JobNotFound(f"Job {self.job_id[:12]} disappeared from the ledger {self.ledger.url} while it "
                              "ran (was it deleted?); submit it again.")
        return job

    def _reset(self, volatile: list[int], *, finished: bool) -> None:
        """Put back to pending what this run must redo: everything (``force``) or the volatile stages."""
        if self.force:
            self.ledger.reset_tasks(self.job_id)
            self.ledger.event(self.job_id, "forced", message="all tasks reset to pending")
        elif volatile:
            self.ledger.reset_tasks(self.job_id, stages=volatile)  # re-list; planned tasks still skip
            if finished:
                self.keep_failed = True  # failures of a finished job are re-run by `geoproc retry` only

    def _finish(self, status: str, result: Any, error: str | None) -> None:
        if self.lease.lost.is_set():
            return  # another driver owns the job now; it writes the final state
        self.ledger.update_job(self.job_id, status=status, result=result, error=error, finished_at=time.time(),
                               lease_owner=None, heartbeat_at=None)
        self.ledger.event(self.job_id, f"job_{status}", message=error)
        self.emit("finished", {"job_id": self.job_id, "status": status})
        log.info("Job %s ended %s%s", self.job_id[:12], status, f": {error}" if error else "")

    # --- execution ---------------------------------------------------------------------------------------

    def _execute(self) -> Outcome:
        if self.storage_options is None:
            self.storage_options = Credentials(resolve_storage_options())
        stages = self.jt.stages
        values: list[Any] = [None] * len(stages)
        planner = Planner(self.ledger, self.jt, self.params, self.job_id, settings=self.settings,
                          keep_failed=self.keep_failed, emit=self.emit, storage_options=self.storage_options,
                          verify=self.verify)
        first: list | None = None
        with cluster_mod.starting(self.cluster_spec, workers=self.workers, settings=self.settings,
                                  preload=handler_modules(self.handlers)) as pending:
            if pending.workers:  # a local cluster starts: plan the first stage meanwhile
                self.ledger.update_job(self.job_id, stage=0)
                first = planner.batches(pipeline_at(stages, 0), None, pending.workers)
            client = pending.client()
            n_workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
            info = client.scheduler_info(n_workers=0)
            link = client.dashboard_link if "dashboard" in info.get("services", {}) else None
            self.emit("cluster", {"dashboard": link, "workers": n_workers})
            submission = Submission(client, self.ledger, self.jt, self.job_id, self.lease, handlers=self.handlers,
                                    storage_options=self.storage_options, settings=self.settings, emit=self.emit,
                                    params=self.params)
            previous: StageOutput | None = None
            i = 0
            try:
                while i < len(stages):
                    pipeline = pipeline_at(stages, i)
                    if i == 0 and first is not None:
                        batches = first
                    else:
                        self.ledger.update_job(self.job_id, stage=i)
                        batches = planner.batches(pipeline, previous, n_workers)
                    if batches:
                        submission.run(batches)
                    for j in pipeline:
                        values[j] = self._aggregate(j)
                    if verdict.pipeline_broken(self.ledger.counts(self.job_id), pipeline, self.jt.failure_policy):
                        break  # the next stages would plan from a broken result
                    last = pipeline[-1]
                    previous = StageOutput(values[last], self._results_of(last))
                    i = last + 1
            except StopRun as stop:
                return self._stopped(stop.reason)
            finally:
                self.executed = submission.executed
        return verdict.conclude(self.ledger, self.jt, self.params, self.job_id, values, submission.bbox)

    def _results_of(self, stage_idx: int) -> Callable[[], Any]:
        return lambda: self.ledger.stream_results(self.job_id, stage_idx)

    def _stopped(self, reason: str) -> Outcome:
        if reason == "lost":
            log.warning("Job %s: another driver took the lease over; this run stops", self.job_id[:12])
            return None, None, None
        self.ledger.cancel_unfinished(self.job_id)
        return JobStatus.CANCELLED, None, "cancelled by request"

    def _aggregate(self, stage_idx: int) -> Any:
        stage = self.jt.stages[stage_idx]
        if stage.aggregate is None:
            return None
        value = stage.aggregate(self.params, self.ledger.stream_results(self.job_id, stage_idx))
        self.ledger.set_stage_result(self.job_id, stage_idx, stage.name, value)
        return value


def handler_modules(handlers: Mapping[str, Any]) -> list[str]:
    """The modules that define a job's handlers (of a ``functools.partial``, its function's): what a
    local cluster's workers import as they start."""
    mods = {getattr(getattr(h, "func", h), "__module__", None) for h in handlers.values()}
    return sorted(m for m in mods if m and m.startswith("geoproc."))
