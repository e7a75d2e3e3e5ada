"""Human-readable views of jobs (rich renderables); the library builds them, the CLI prints them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table

STATUS_STYLE = {"completed": "green", "completed_with_errors": "yellow", "failed": "red", "cancelled": "magenta",
                "running": "cyan", "pending": "white", "interrupted": "magenta", "skipped": "yellow"}


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def seconds(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}s" if x < 120 else f"{x / 60:.1f}min"


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def progress_table(res: Any) -> Table:
    """Per-stage task counts of a :class:`~geoproc.api.JobResult`."""
    t = Table(title=f"{res.job_type} {res.job_id[:12]} — {res.status} ({res.progress:.0f}%)")
    for col in ("stage", "tasks", "completed", "failed", "skipped", "pending", "cancelled"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for s in res.stages:
        c = s.counts
        t.add_row(s.name, str(s.total), str(c.get("completed", 0)), str(c.get("failed", 0)),
                  str(c.get("skipped", 0)), str(c.get("pending", 0)), str(c.get("cancelled", 0)))
    return t
