"""The ledger's task rows: planned tasks, their outcomes, and what later stages read of them.

Only the driver writes here, and its one hot write, :meth:`TasksMixin.record_outcomes`, is a batched
transaction fenced by the job's lease.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from ..status import TaskStatus
from . import schema as s
from .base import LedgerBase
from .metrics import stage_metrics

_TASK_COLUMNS = (
    "task_id", "job_id", "stage", "stage_name", "seq", "key", "handler", "params", "parent_id", "fingerprint", "status",
    "attempts", "result", "error_kind", "error_code", "error_message", "remediation", "traceback", "worker",
    "started_at", "finished_at", "updated_at",
)


class TasksMixin(LedgerBase):
    """Tasks (part of :class:`~geoproc.ledger.Ledger`)."""

    def add_tasks(self, rows: Iterable[dict[str, Any]], batch: int = 5000) -> None:
        """Insert planned tasks as pending; tasks that already exist are left as they are."""
        now = time.time()
        buf: list[dict[str, Any]] = []

        def flush(c: sa.Connection) -> None:
            if buf:
                c.execute(self._insert(s.tasks).on_conflict_do_nothing(index_elements=["task_id"]), buf)
                buf.clear()

        with self.engine.begin() as c:
            for r in rows:
                buf.append({**{k: None for k in _TASK_COLUMNS}, "status": TaskStatus.PENDING, "attempts": 0,
                            "updated_at": now, **r})
                if len(buf) >= batch:
                    flush(c)
            flush(c)

    def task_states(self, job_id: str, stage: int) -> dict[str, tuple[str, str | None]]:
        """task_id -> (status, fingerprint) for one stage."""
        q = sa.select(s.tasks.c.task_id, s.tasks.c.status, s.tasks.c.fingerprint).where(
            s.tasks.c.job_id == job_id, s.tasks.c.stage == stage)
        with self.engine.connect() as c:
            return {tid: (status, fp) for tid, status, fp in c.execute(q).all()}

    def refresh_tasks(self, rows: list[dict[str, Any]]) -> None:
        """Put tasks whose input changed back to pending, with their new fingerprint and params."""
        if not rows:
            return
        t = s.tasks
        stmt = (sa.update(t).where(t.c.task_id == sa.bindparam("b_id"))
                .values(status=TaskStatus.PENDING, result=None, fingerprint=sa.bindparam("b_fp"),
                        params=sa.bindparam("b_params"), updated_at=time.time()))
        with self.engine.begin() as c:
            c.execute(stmt, [{"b_id": r["task_id"], "b_fp": r["fingerprint"], "b_params": r["params"]} for r in rows])

    def results(self, task_ids: list[str]) -> dict[str, Any]:
        """Stored results of the given tasks (completed ones only)."""
        out: dict[str, Any] = {}
        with self.engine.connect() as c:
            for i in range(0, len(task_ids), 900):
                q = sa.select(s.tasks.c.task_id, s.tasks.c.result).where(
                    s.tasks.c.task_id.in_(task_ids[i:i + 900]), s.tasks.c.status == TaskStatus.COMPLETED)
                out.update(c.execute(q).all())
        return out

    def stream_results(self, job_id: str, stage: int, page: int = 2000) -> Iterator[dict[str, Any]]:
        """Results of a stage's completed tasks in plan order, fetched page by page (bounded memory)."""
        last = -1
        while True:
            q = (sa.select(s.tasks.c.seq, s.tasks.c.result)
                 .where(s.tasks.c.job_id == job_id, s.tasks.c.stage == stage, s.tasks.c.status == TaskStatus.COMPLETED,
                        s.tasks.c.seq > last)
                 .order_by(s.tasks.c.seq).limit(page))
            with self.engine.connect() as c:
                rows = c.execute(q).all()
            if not rows:
                return
            for _seq, result in rows:
                yield result
            last = rows[-1][0]

    def record_outcomes(self, outcomes: list[dict[str, Any]], job_id: str | None = None,
                        owner: str | None = None) -> bool:
        """Write a batch of task outcomes in one transaction (the driver's only hot write).

        With ``owner`` the write is fenced: it happens only while that driver still holds the job's
        lease, so a driver that lost its lease (paused, then taken over) cannot overwrite newer state.
        Every failure is also appended to the job's events, which keeps the attempt history. An outcome's
        ``written`` list of ``(url, size, sha256)`` goes to the outputs table in the same transaction.
        """
        if not outcomes:
            return True
        now = time.time()
        t = s.tasks
        stmt = (sa.update(t).where(t.c.task_id == sa.bindparam("b_id"))
                .values(status=sa.bindparam("b_status"), attempts=t.c.attempts + sa.bindparam("b_attempts"),
                        result=sa.bindparam("b_result"), error_kind=sa.bindparam("b_kind"),
                        error_code=sa.bindparam("b_code"),
                        error_message=sa.bindparam("b_msg"), remediation=sa.bindparam("b_rem"),
                        traceback=sa.bindparam("b_tb"), worker=sa.bindparam("b_worker"),
                        started_at=sa.bindparam("b_start"), finished_at=sa.bindparam("b_end"),
                        updated_at=now))
        rows = [{"b_id": o["task_id"], "b_status": o["status"], "b_attempts": o.get("attempts", 0),
                 "b_result": o.get("result"), "b_kind": o.get("error_kind"), "b_code": o.get("error_code"),
                 "b_msg": o.get("error_message"), "b_rem": o.get("remediation"), "b_tb": o.get("traceback"),
                 "b_worker": o.get("worker"), "b_start": o.get("started_at"), "b_end": o.get("finished_at")}
                for o in outcomes]
        failures = [{"job_id": job_id, "at": now, "kind": "task_failed" if o["status"] == TaskStatus.FAILED else "task_skipped",
                     "task_id": o["task_id"], "message": f"{o.get('error_code')}: {o.get('error_message')}",
                     "data": {"attempts": o.get("attempts"), "kind": o.get("error_kind")}}
                    for o in outcomes if o["status"] != TaskStatus.COMPLETED and job_id]
        with self.engine.begin() as c:
            if owner is not None:
                q = sa.select(s.jobs.c.lease_owner).where(s.jobs.c.job_id == job_id)
                if self.dialect == "postgresql":
                    q = q.with_for_update()  # a takeover waits until this batch is written
                if c.execute(q).scalar() != owner:
                    return False
            c.execute(stmt, rows)
            if failures:
                c.execute(sa.insert(s.events), failures)
            written = [{"url": url, "job_id": job_id, "task_id": o["task_id"], "size": size, "sha256": sha, "at": now}
                       for o in outcomes for url, size, sha in o.get("written", ()) if job_id]
            if written:
                c.execute(self._insert(s.outputs).on_conflict_do_nothing(
                    index_elements=["url", "job_id", "sha256"]), written)
        return True

    def output_history(self, url: str) -> list[dict[str, Any]]:
        """Every recorded write of ``url``, oldest first, with the writing job's type and status."""
        q = (sa.select(s.outputs, s.jobs.c.job_type, s.jobs.c.status)
             .join(s.jobs, s.jobs.c.job_id == s.outputs.c.job_id, isouter=True)
             .where(s.outputs.c.url == url).order_by(s.outputs.c.at, s.outputs.c.id))
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def reset_tasks(self, job_id: str, statuses: Iterable[str] | None = None, task_ids: list[str] | None = None,
                    stages: list[int] | None = None) -> int:
        """Put tasks back to pending (``--force``, ``retry``); attempts are kept as history."""
        q = sa.update(s.tasks).where(s.tasks.c.job_id == job_id)
        if stages is not None:
            q = q.where(s.tasks.c.stage.in_(stages))
        if statuses is not None:
            q = q.where(s.tasks.c.status.in_(list(statuses)))
        if task_ids is not None:
            q = q.where(s.tasks.c.task_id.in_(task_ids))
        with self.engine.begin() as c:
            return c.execute(q.values(status=TaskStatus.PENDING, result=None, updated_at=time.time())).rowcount

    def drop_tasks(self, job_id: str, task_ids: list[str]) -> int:
        """Delete tasks and, stage after stage, the lineage tasks that consume them; returns how many."""
        t = s.tasks
        dropped, frontier = 0, list(task_ids)
        with self.engine.begin() as c:
            while frontier:
                children: list[str] = []
                for i in range(0, len(frontier), 900):
                    part = frontier[i:i + 900]
                    children += c.execute(sa.select(t.c.task_id).where(t.c.job_id == job_id,
                                                                      t.c.parent_id.in_(part))).scalars().all()
                    dropped += c.execute(sa.delete(t).where(t.c.job_id == job_id, t.c.task_id.in_(part))).rowcount
                frontier = children
        return dropped

    def cancel_unfinished(self, job_id: str, task_ids: list[str] | None = None) -> int:
        """Mark pending tasks (or the given ones, if not completed) as cancelled."""
        q = sa.update(s.tasks).where(s.tasks.c.job_id == job_id, s.tasks.c.status != TaskStatus.COMPLETED,
                                     s.tasks.c.status != TaskStatus.FAILED)
        if task_ids is not None:
            q = q.where(s.tasks.c.task_id.in_(task_ids))
        with self.engine.begin() as c:
            return c.execute(q.values(status=TaskStatus.CANCELLED, updated_at=time.time())).rowcount

    def counts(self, job_id: str) -> dict[int, dict[str, int]]:
        """stage -> status -> number of tasks."""
        q = (sa.select(s.tasks.c.stage, s.tasks.c.status, sa.func.count())
             .where(s.tasks.c.job_id == job_id).group_by(s.tasks.c.stage, s.tasks.c.status))
        out: dict[int, dict[str, int]] = {}
        with self.engine.connect() as c:
            for stage, status, n in c.execute(q):
                out.setdefault(stage, {})[status] = n
        return out

    def list_tasks(self, job_id: str, status: str | None = None, stage: int | None = None,
                   limit: int | None = 100, error_kind: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(s.tasks).where(s.tasks.c.job_id == job_id).order_by(s.tasks.c.stage, s.tasks.c.seq)
        if error_kind:
            q = q.where(s.tasks.c.error_kind == error_kind)
        if status:
            q = q.where(s.tasks.c.status == status)
        if stage is not None:
            q = q.where(s.tasks.c.stage == stage)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def metrics(self, job_id: str, page: int = 5000) -> dict[int, dict[str, Any]]:
        """Per stage: tasks, failures, retries, busy seconds, span, tasks/s, bytes read and written
        (see :func:`geoproc.ledger.metrics.stage_metrics`)."""
        return stage_metrics(self.engine, job_id, page)
