"""The ledger's stage results and job events.

Events are an append-only history of a job (runs, takeovers, failures of each attempt, exceptions
that were survived); stage results hold each stage's aggregate, for resumed runs and reports.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from . import schema as s
from .base import LedgerBase


class EventsMixin(LedgerBase):
    """Stage results, and reading events back (part of :class:`~geoproc.ledger.Ledger`).

    Writing an event is :meth:`~geoproc.ledger.base.LedgerBase.event`: every part records some.
    """

    def set_stage_result(self, job_id: str, stage: int, stage_name: str, result: Any) -> None:
        now = time.time()
        stmt = self._insert(s.stage_results).values(job_id=job_id, stage=stage, stage_name=stage_name,
                                                    result=result, updated_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["job_id", "stage"],
                                          set_={"result": result, "updated_at": now})
        with self.engine.begin() as c:
            c.execute(stmt)

    def stage_results(self, job_id: str) -> dict[int, Any]:
        q = sa.select(s.stage_results.c.stage, s.stage_results.c.result).where(s.stage_results.c.job_id == job_id)
        with self.engine.connect() as c:
            return dict(c.execute(q).all())

    def events(self, job_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(s.events).where(s.events.c.job_id == job_id).order_by(s.events.c.id).limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def last_event(self, job_id: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """The job's latest event of one of ``kinds`` (a review decision, say), or None."""
        q = (sa.select(s.events).where(s.events.c.job_id == job_id, s.events.c.kind.in_(kinds))
             .order_by(s.events.c.id.desc()).limit(1))
        with self.engine.connect() as c:
            row = c.execute(q).mappings().first()
        return dict(row) if row else None
