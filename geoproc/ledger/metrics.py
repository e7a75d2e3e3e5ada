"""Per-stage analytics over a job's task rows, for `geoproc status` and the reports.

Read page by page in (stage, seq) order, so a job of a million tasks is summarised in bounded memory.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..status import TaskStatus
from . import schema as s


def stage_metrics(engine: sa.Engine, job_id: str, page: int = 5000) -> dict[int, dict[str, Any]]:
    """Per stage: tasks, failures, retries, busy seconds, span, tasks/s, bytes read and written.

    Bytes come from the ``metrics`` dict handlers may put in their results
    (``{"bytes_read": n, "bytes_written": m}``).
    """
    t = s.tasks
    out: dict[int, dict[str, Any]] = {}
    last = (-1, -1)
    while True:
        q = (sa.select(t.c.stage, t.c.seq, t.c.status, t.c.attempts, t.c.started_at, t.c.finished_at, t.c.result)
             .where(t.c.job_id == job_id, sa.tuple_(t.c.stage, t.c.seq) > sa.tuple_(*last))
             .order_by(t.c.stage, t.c.seq).limit(page))
        with engine.connect() as c:
            rows = c.execute(q).all()
        if not rows:
            break
        for stage, _seq, status, attempts, t0, t1, result in rows:
            m = out.setdefault(stage, {"tasks": 0, "failed": 0, "retries": 0, "busy_s": 0.0, "first": None,
                                       "last": None, "bytes_read": 0, "bytes_written": 0})
            m["tasks"] += 1
            m["failed"] += status == TaskStatus.FAILED
            m["retries"] += max(0, (attempts or 0) - 1)
            if t0 and t1:
                m["busy_s"] += t1 - t0
                m["first"] = t0 if m["first"] is None else min(m["first"], t0)
                m["last"] = t1 if m["last"] is None else max(m["last"], t1)
            if isinstance(result, dict) and isinstance(result.get("metrics"), dict):
                m["bytes_read"] += int(result["metrics"].get("bytes_read", 0) or 0)
                m["bytes_written"] += int(result["metrics"].get("bytes_written", 0) or 0)
        last = (rows[-1][0], rows[-1][1])
    for m in out.values():
        span = (m["last"] - m["first"]) if m["first"] is not None else 0.0
        m["span_s"] = round(span, 3)
        m["tasks_per_s"] = round(m["tasks"] / span, 1) if span > 0 else None
        m["busy_s"] = round(m["busy_s"], 3)
    return out

