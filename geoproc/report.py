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


def parse_since(text: str | None) -> float | None:
    """``7d``, ``12h``, ``30m``, ``45s`` ago, or an ISO date/time, as epoch seconds."""
    import time

    if not text:
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        from .errors import UserError

        raise UserError(f"Cannot read the time {text!r}; use 7d, 12h, 30m or an ISO date like 2026-01-31.") from None


def metrics_table(res: Any) -> Table:
    """Per-stage metrics of a job: tasks/s, retries, failures, busy time, bytes."""
    t = Table(title="metrics")
    for col in ("stage", "tasks/s", "retries", "failed", "span", "busy", "read", "written"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for name, m in res.metrics.items():
        t.add_row(name, "-" if m["tasks_per_s"] is None else f"{m['tasks_per_s']:.0f}", str(m["retries"]),
                  str(m["failed"]), seconds(m["span_s"]), seconds(m["busy_s"]), human_bytes(m["bytes_read"]),
                  human_bytes(m["bytes_written"]))
    return t


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


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
