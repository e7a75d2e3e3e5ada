"""Human-readable views of jobs (rich renderables); the library builds them, the CLI prints them.

Every view here fits an 80-column terminal: long cells wrap inside their column instead of widening
the table.
"""

from __future__ import annotations

import datetime as dt
import time
import types
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import ByteSize, SecretStr
from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .api import STAGE_COLUMNS
from .errors import CodeInfo, UserError
from .model import JobType
from .status import JobStatus, TaskStatus
from .units import human_bytes

__all__ = ["STATUS_STYLE", "codes_view", "human_bytes", "job_list", "metrics_table", "param_table",
           "parse_since", "progress_table", "seconds", "styled", "when"]

STATUS_STYLE: dict[str, str] = {
    JobStatus.COMPLETED: "green", JobStatus.COMPLETED_WITH_ERRORS: "yellow", JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta", JobStatus.RUNNING: "cyan", JobStatus.PENDING: "white",
    JobStatus.INTERRUPTED: "magenta", TaskStatus.SKIPPED: "yellow", JobStatus.AWAITING_REVIEW: "blue",
    JobStatus.REJECTED: "red", JobStatus.UNPUBLISHED: "magenta",
}
#: the task columns of a stage table, in the order they are shown
TASK_COLUMNS = STAGE_COLUMNS
#: how each kind of code is treated, in words (``geoproc codes``)
KIND_TEXT = {"invalid": "invalid input: quarantined, not retried", "transient": "transient: retried with backoff",
             "error": "the task fails", "skipped": "the task is skipped", "warning": "warning: the task succeeds",
             "info": "note: the task succeeds"}


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
    if not text:
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
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


def progress_table(res: Any) -> Table:
    """Per-stage task counts of a :class:`~geoproc.api.JobResult` (its own rich view)."""
    return res.__rich__()


# --- the registry: `geoproc list` ------------------------------------------------------------------


def job_list(jobs: Mapping[str, JobType]) -> Table:
    """One row per job type: its name and one-line summary (the summary wraps on narrow terminals)."""
    t = Table("job type", "summary", box=None, title_justify="left", pad_edge=False)
    t.columns[0].no_wrap = True
    for name in sorted(jobs):
        t.add_row(f"[bold]{name}[/]", escape(jobs[name].summary))
    return t


def type_name(annotation: Any) -> tuple[str, list[str]]:
    """A short type name for a parameter's annotation, and its choices when it is a ``Literal``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "choice", [str(a) for a in args]
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:  # Optional[X]: the default column shows the None
            return type_name(rest[0])
        return " | ".join(type_name(a)[0] for a in rest), []
    if origin in (list, tuple, set, dict):
        inner = ", ".join(type_name(a)[0] for a in args)
        return (f"{origin.__name__}[{inner}]" if args else origin.__name__), []
    special = {SecretStr: "secret", ByteSize: "size", dt.datetime: "datetime"}
    return special.get(annotation, getattr(annotation, "__name__", str(annotation))), []


def _default(p: Mapping[str, Any], kind: str) -> str:
    if p["required"]:
        return "(required)"
    if p["default"] is None:
        return "-"
    return human_bytes(p["default"]) if kind == "size" else repr(p["default"])


def param_table(jt: JobType) -> Group:
    """A job type's parameters: name, type, default and description (choices, bounds, old names)."""
    t = Table(title=f"{jt.name} — {escape(jt.summary)}", title_justify="left", box=box.SIMPLE_HEAD,
              pad_edge=False)
    t.add_column("parameter", no_wrap=True)
    t.add_column("type", max_width=12)
    t.add_column("default", max_width=16, overflow="fold")
    t.add_column("description")
    fields = jt.params.model_fields
    for p in jt.describe_params():
        kind, choices = type_name(fields[p["name"]].annotation)
        notes = [p["help"]] if p["help"] else []
        if choices:
            notes.append(f"one of: {', '.join(choices)}")
        if p["bounds"]:
            notes.append(f"allowed: {p['bounds']}")
        if p.get("deprecated_names"):
            notes.append(f"old name: {', '.join(p['deprecated_names'])}")
        t.add_row(p["name"] + ("" if p["hashed"] else " *"), escape(kind), escape(_default(p, kind)),
                  escape("; ".join(notes)))
    return Group(t, Text("* not part of the job id"))


# --- the error catalogue: `geoproc codes` ----------------------------------------------------------


def codes_view(entries: Iterable[tuple[str, CodeInfo]]) -> Group:
    """Each code on its own line, then what it means and what to do, indented and wrapped."""
    parts: list[RenderableType] = []
    for code, info in entries:
        parts.append(Text.assemble((code, "bold"), "  ", (f"({KIND_TEXT.get(info.kind, info.kind)})", "dim")))
        parts.append(Padding(Text(info.meaning), (0, 0, 0, 4)))
        parts.append(Padding(Text(f"→ {info.remediation}"), (0, 0, 1, 4)))
    return Group(*parts)
