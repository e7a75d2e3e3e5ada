"""What every part of the ledger shares: the database engine, the dialect's upsert, and writing events."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import schema as s


class LedgerBase:
    """One ledger database; the parts of :class:`~geoproc.ledger.Ledger` build on it."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    def __repr__(self) -> str:
        return f"Ledger({self.url})"

    @property
    def url(self) -> str:
        """The URL with any password hidden: safe to print."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def event(self, job_id: str, kind: str, **fields: Any) -> None:
        """Append an event to the job's history (``stage``, ``task_id``, ``message``, ``data``)."""
        with self.engine.begin() as c:
            self._event(c, job_id, kind, **fields)

    def _event(self, c: sa.Connection, job_id: str, kind: str, *, stage: int | None = None,
               task_id: str | None = None, message: str | None = None, data: Any = None) -> None:
        c.execute(sa.insert(s.events).values(job_id=job_id, at=time.time(), kind=kind, stage=stage,
                                             task_id=task_id, message=message, data=data))
