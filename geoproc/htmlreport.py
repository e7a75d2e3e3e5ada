"""A one-page, self-contained HTML report of a job, built from the ledger.

The page shows the job (type, id, status, parameters, times), a table of its stages with task counts
and timings, a timeline of the stages drawn as inline SVG, the failed tasks with their error codes and
remediation, the event trail, and the job's quicklook images.

Quicklooks are found in the job result and in task results: a ``quicklooks`` list (or a single
``quicklook``) whose items are PNG/JPEG paths or URLs, or dicts with ``href`` (or ``url``/``path``) and
an optional ``title``. Each image is read through the same storage layer as the job's data and embedded
as a ``data:`` URI, so the page needs nothing else to display; an image that cannot be read is listed
with the reason instead. URLs are shown without query strings (SAS tokens) or user info.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .jobs import ALL_JOBS
from .ledger import Ledger, open_ledger
from .ledger.store import JobRecord
from .report import TASK_COLUMNS, seconds, when
from .status import JobStatus, TaskStatus
from .storage import open_fs, redact, resolve_storage_options
from .units import human_bytes

STATUS_COLOURS: dict[str, str] = {
    JobStatus.COMPLETED: "#2e7d32", JobStatus.COMPLETED_WITH_ERRORS: "#b7791f", JobStatus.FAILED: "#c62828",
    JobStatus.CANCELLED: "#8e24aa", JobStatus.RUNNING: "#0277bd", JobStatus.PENDING: "#607d8b",
    TaskStatus.SKIPPED: "#b7791f", JobStatus.INTERRUPTED: "#8e24aa", JobStatus.AWAITING_REVIEW: "#1565c0",
    JobStatus.REJECTED: "#c62828", JobStatus.UNPUBLISHED: "#8e24aa",
}
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1c2430;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde3ea}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #eef1f4;vertical-align:top}th{background:#f5f7fa}td.n{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:.8rem;color:#fff;font-weight:600}
code{font-size:.85em;background:#f5f7fa;padding:0 .2rem}.meta{color:#5b6776}.rem{color:#2e5d8a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:1rem}
figure{margin:0;align-self:start;border:1px solid #dde3ea;border-radius:6px;padding:.5rem;background:#fafbfc}
figure img{width:100%;image-rendering:pixelated;background:#fff}figcaption{font-size:.8rem;word-break:break-all}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _bytes(n: int | None) -> str:
    """A byte count in binary units; none recorded (or none moved) shows as '-'."""
    return human_bytes(n) if n else "-"


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{STATUS_COLOURS.get(status, "#607d8b")}">{_e(status)}</span>'


# --- quicklooks ---------------------------------------------------------------------------------------------


def _quicklook_items(result: Any) -> Iterator[tuple[str, str]]:
    """(href, title) pairs named by one result dict."""
    if not isinstance(result, Mapping):
        return
    items: list[Any] = []
    if isinstance(result.get("quicklooks"), list):
        items += result["quicklooks"]
    if result.get("quicklook"):
        items.append(result["quicklook"])
    for item in items:
        if isinstance(item, str):
            yield item, Path(item.split("?", 1)[0]).name
        elif isinstance(item, Mapping):
            href = item.get("href") or item.get("url") or item.get("path")
            if isinstance(href, str):
                yield href, str(item.get("title") or Path(href.split("?", 1)[0]).name)


def collect_quicklooks(ledger: Ledger, job: JobRecord, limit: int = 48) -> list[tuple[str, str]]:
    """The quicklooks a job lists, from its result first, then from its tasks' results (no duplicates)."""
    seen: dict[str, str] = {}
    for href, title in _quicklook_items(job.result):
        seen.setdefault(href, title)
    for task in ledger.list_tasks(job.job_id, status=TaskStatus.COMPLETED, limit=None):
        if len(seen) >= limit:
            break
        for href, title in _quicklook_items(task["result"]):
            seen.setdefault(href, title)
    return list(seen.items())[:limit]


def read_image(href: str, storage_options: Mapping[str, Any] | None = None,
               max_bytes: int = 8 * 2**20) -> tuple[str, bytes]:
    """Read an image (local path or fsspec URL); returns (MIME type, bytes).

    Raises:
        ValueError: the file is not a PNG or JPEG, or is larger than ``max_bytes``.
        OSError: the file cannot be read.
    """
    fs, path = open_fs(href, storage_options)
    with fs.open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    mime = next((m for magic, m in _MAGIC.items() if data.startswith(magic)), None)
    if mime is None:
        raise ValueError("not a PNG or JPEG image")
    return mime, data


def _figures(quicklooks: list[tuple[str, str]], storage_options: Mapping[str, Any] | None) -> str:
    figs = []
    for href, title in quicklooks:
        shown = redact(href)
        try:
            mime, data = read_image(href, storage_options)
        except Exception as exc:  # noqa: BLE001 - any unreadable image is reported on the page
            reason = str(exc).replace(href, shown)
            if "?" in href:  # a query string may hold a SAS token: never show it
                reason = reason.replace(href.split("?", 1)[1], "…")
            figs.append(f'<figure class="missing"><figcaption><b>{_e(title)}</b><br>{_e(shown)}<br>'
                        f"not shown: {_e(type(exc).__name__)}: {_e(reason[:200])}</figcaption></figure>")
            continue
        uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        figs.append(f'<figure><img src="{uri}" alt="{_e(title)}" title="{_e(shown)}">'
                    f"<figcaption><b>{_e(title)}</b><br>{_e(shown)}</figcaption></figure>")
    return f'<div class="grid">{"".join(figs)}</div>'


def _scrub(value: Any) -> Any:
    """``value`` with every URL that carries a query string or user info shown without them."""
    if isinstance(value, str):
        return redact(value) if "://" in value and ("?" in value or "@" in value) else value
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


# --- sections -----------------------------------------------------------------------------------------------


def _timeline(job: JobRecord, names: list[str], metrics: Mapping[int, Mapping[str, Any]]) -> str:
    """Stages as horizontal bars from their first task start to their last task end (inline SVG)."""
    spans = [(i, m["first"], m["last"]) for i, m in sorted(metrics.items()) if m.get("first") and m.get("last")]
    if not spans:
        return "<p class='meta'>No task timings recorded yet.</p>"
    t0 = min([job.started_at or spans[0][1]] + [s[1] for s in spans])
    t1 = max([job.finished_at or 0.0] + [s[2] for s in spans])
    total = max(t1 - t0, 1e-6)
    width, left, row = 960, 160, 26
    bars = []
    for n, (i, a, b) in enumerate(spans):
        x = left + (a - t0) / total * (width - left - 10)
        w = max(2.0, (b - a) / total * (width - left - 10))
        name = names[i] if i < len(names) else f"stage {i}"
        y = 8 + n * row
        bars.append(f'<text x="4" y="{y + 14}" font-size="13">{_e(name)}</text>'
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" rx="3" fill="#3b82c4">'
                    f"<title>{_e(name)}: {b - a:.2f} s</title></rect>"
                    + (f'<text x="{x + w + 4:.1f}" y="{y + 14}" font-size="12" fill="#5b6776">'
                       if x + w + 60 < width else
                       f'<text x="{x + w - 4:.1f}" y="{y + 14}" font-size="12" fill="#fff" text-anchor="end">')
                    + f"{b - a:.2f} s</text>")
    height = 16 + len(spans) * row
    axis = f'<text x="{left}" y="{height + 12}" font-size="11" fill="#5b6776">0 s</text>' \
           f'<text x="{width - 60}" y="{height + 12}" font-size="11" fill="#5b6776">{total:.2f} s</text>'
    return (f'<svg class="timeline" viewBox="0 0 {width} {height + 16}" width="100%" role="img" '
            f'aria-label="stage timeline">{"".join(bars)}{axis}</svg>')


def _stage_rows(names: list[str], descriptions: list[str], counts: Mapping[int, Mapping[str, int]],
                metrics: Mapping[int, Mapping[str, Any]]) -> str:
    rows = []
    for i, name in enumerate(names):
        c, m = counts.get(i, {}), metrics.get(i, {})
        cells = "".join(f'<td class="n">{c.get(k, 0)}</td>' for k in TASK_COLUMNS)
        rows.append(
            f'<tr class="stage"><td><b>{_e(name)}</b><br><span class="meta">{_e(descriptions[i])}</span></td>'
            f'<td class="n">{sum(c.values())}</td>{cells}<td class="n">{m.get("retries", 0)}</td>'
            f'<td class="n">{seconds(m.get("span_s"))}</td><td class="n">{seconds(m.get("busy_s"))}</td>'
            f'<td class="n">{m.get("tasks_per_s") or "-"}</td><td class="n">{_bytes(m.get("bytes_read"))}</td>'
            f'<td class="n">{_bytes(m.get("bytes_written"))}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("stage", "tasks", *TASK_COLUMNS, "retries", "span", "busy",
                                              "tasks/s", "read", "written"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _errors(ledger: Ledger, job: JobRecord, limit: int) -> str:
    failed = ledger.list_tasks(job.job_id, status=TaskStatus.FAILED, limit=limit)
    if not failed and not job.error:
        return "<p class='meta'>No errors.</p>"
    parts = [f"<p><b>Job:</b> {_e(job.error)}</p>"] if job.error else []
    if failed:
        rows = "".join(
            f'<tr class="error"><td><code>{_e(t["task_id"])}</code><br><span class="meta">{_e(t["stage_name"])}'
            f' · {_e(str(t["key"])[:80])} · {t["attempts"]} attempt(s)</span></td>'
            f'<td><b>{_e(t["error_code"])}</b>: {_e(t["error_message"])}'
            f'<br><span class="rem">→ {_e(t["remediation"] or "see the task traceback: geoproc tasks")}'
            f"</span></td></tr>" for t in failed)
        parts.append(f"<table><tr><th>task</th><th>error and remediation</th></tr>{rows}</table>")
        total = sum(c.get(TaskStatus.FAILED, 0) for c in ledger.counts(job.job_id).values())
        if total > len(failed):
            parts.append(f"<p class='meta'>{total - len(failed)} more failed tasks: "
                         f"<code>geoproc tasks {job.job_id[:12]} --status failed</code></p>")
    return "".join(parts)


def _events(ledger: Ledger, job: JobRecord, limit: int) -> str:
    evs = ledger.events(job.job_id, limit=10_000)[-limit:]
    rows = "".join(f"<tr><td>{when(e['at'])}</td><td>{_e(e['kind'])}</td>"
                   f"<td>{'' if e['stage'] is None else e['stage']}</td><td>{_e(e['task_id'])}</td>"
                   f"<td>{_e(e['message'])}</td></tr>" for e in evs)
    return f"<table><tr><th>time</th><th>event</th><th>stage</th><th>task</th><th>message</th></tr>{rows}</table>"


# --- the page -----------------------------------------------------------------------------------------------


def render_html(ledger: Ledger, job_id: str, *, storage_options: Mapping[str, Any] | None = None,
                max_errors: int = 25, max_events: int = 50, max_images: int = 48) -> str:
    """The report of one job (id or unambiguous prefix) as a self-contained HTML page."""
    job = ledger.find_job(job_id)
    jt = ALL_JOBS.get(job.job_type)
    counts = ledger.counts(job.job_id)
    metrics = ledger.metrics(job.job_id)
    if jt is not None:
        names = [st.name for st in jt.stages]
        descriptions = [st.description for st in jt.stages]
    else:  # a job type this installation does not know: stage names come from the tasks
        n = max([*counts, *metrics, job.n_stages - 1], default=-1) + 1
        names = [f"stage {i}" for i in range(n)]
        for t in ledger.list_tasks(job.job_id, limit=None):
            names[t["stage"]] = t["stage_name"]
        descriptions = [""] * n
    quicklooks = collect_quicklooks(ledger, job, limit=max_images)
    result = json.dumps(_scrub(job.result), indent=1, default=str) if job.result is not None else "null"
    if len(result) > 20_000:
        result = result[:20_000] + "\n…"
    params = "".join(f"<tr><td><code>{_e(k)}</code></td><td><code>{_e(json.dumps(_scrub(v), default=str))}</code></td></tr>"
                     for k, v in sorted(job.params.items()))
    title = f"{job.job_type} {job.job_id[:12]}"
    body = f"""
<h1>{_e(job.job_type)} <code>{_e(job.job_id[:12])}</code> {_badge(job.status)}</h1>
<p class="meta">{_e(jt.description if jt else "")}<br>job id <code>{_e(job.job_id)}</code> ·
created {when(job.created_at)} · started {when(job.started_at)} · finished {when(job.finished_at)} ·
duration {seconds(job.duration)} · runs {job.runs}</p>
<h2 id="stages">Stages</h2>{_stage_rows(names, descriptions, counts, metrics)}
<h2 id="timeline">Timeline</h2>{_timeline(job, names, metrics)}
<h2 id="errors">Errors</h2>{_errors(ledger, job, max_errors)}
<h2 id="quicklooks">Quicklooks</h2>
{_figures(quicklooks, storage_options) if quicklooks else "<p class='meta'>This job lists no quicklooks.</p>"}
<h2 id="params">Parameters</h2><table>{params}</table>
<h2 id="result">Result</h2><pre>{_e(result)}</pre>
<h2 id="events">Events</h2>{_events(ledger, job, max_events)}
"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def write_html_report(job_id: str, out: str | Path, *, ledger: str | Ledger | None = None,
                      storage_options: Mapping[str, Any] | None = None) -> Path:
    """Write the HTML report of ``job_id`` to ``out`` and return its path.

    ``storage_options`` are the credentials used to read quicklooks on remote storage; by default they
    are resolved from the environment like a job run's.
    """
    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger, read_only=True)
    try:
        page = render_html(led, job_id, storage_options=storage_options if storage_options is not None
                           else resolve_storage_options())
    finally:
        if not isinstance(ledger, Ledger):
            led.close()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def write_review_report(job_id: str, *, ledger: str | Ledger | None = None,
                        storage_options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Put the job's HTML report (with its quicklooks) beside each preview catalog of a job awaiting
    review, as ``report.html``: what a reviewer opens before ``geoproc approve``. Returns preview
    catalog -> report URL."""
    from .lifecycle import review_state

    led = ledger if isinstance(ledger, Ledger) else open_ledger(ledger, read_only=True)
    try:
        job = led.find_job(job_id)
        state = review_state(led, job) or {}
        previews = state.get("previews", []) if state.get("state") == "awaiting" else []
        if not previews:
            return {}
        options = storage_options if storage_options is not None else resolve_storage_options()
        page = render_html(led, job.job_id, storage_options=options)
    finally:
        if not isinstance(ledger, Ledger):
            led.close()
    written = {}
    for catalog in previews:
        written[catalog] = catalog.rsplit("/", 1)[0] + "/report.html"
        fs, path = open_fs(written[catalog], options)
        with fs.open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return written
