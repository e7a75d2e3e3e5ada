"""Readable tables of an inventory result for the CLI (rich renderables; the library never prints)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ..units import human_bytes

TOP = 15


def _counts(title: str, table: dict[str, dict[str, int]], total_bytes: int) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("", "files", "bytes", "share"):
        t.add_column(col, justify="left" if not col else "right")
    items = list(table.items())
    for key, v in items[:TOP]:
        share = f"{100 * v['bytes'] / total_bytes:.1f}%" if total_bytes else "-"
        t.add_row(escape(key), f"{v['files']:,}", human_bytes(v["bytes"]), share)
    if len(items) > TOP:
        rest = items[TOP:]
        t.add_row(f"… {len(rest)} more", f"{sum(v['files'] for _, v in rest):,}",
                  human_bytes(sum(v["bytes"] for _, v in rest)), "")
    return t


def render(result: dict[str, Any]) -> Any:
    """Totals, extremes, per-extension / per-prefix / size-bucket tables and the header mix."""
    s = result.get("summary")
    if not s:
        return Table(title="no summary (the scan did not complete)")
    head = Table(title=escape(f"Inventory of {result.get('source')}{'/' + result['prefix'] if result.get('prefix') else ''}"),
                 title_justify="left", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("files", f"{s['files']:,}" + (" (limit reached)" if s.get("hit_limit") else ""))
    head.add_row("bytes", f"{human_bytes(s['bytes'])} ({s['bytes']:,} B)")
    head.add_row("listed", f"{s.get('scanned', 0):,} blobs in {result.get('shards', '?')} shards")
    if result.get("filters"):
        head.add_row("filters", escape(", ".join(f"{k}={v}" for k, v in result["filters"].items())))
    for key in ("largest", "smallest", "oldest", "newest"):
        e = s.get(key)
        if e:
            head.add_row(key, escape(f"{e['name']}  {human_bytes(e['size'])}  {e.get('last_modified') or ''}"))
    for kind, url in (result.get("outputs") or {}).items():
        head.add_row(f"→ {kind}", escape(url))
    parts: list[Any] = [head, _counts("By extension", s["by_extension"], s["bytes"]),
                        _counts("By top-level prefix", s["by_prefix"], s["bytes"]),
                        _counts("By size", s["size_buckets"], s["bytes"])]
    h = s.get("headers")
    if h:
        t = Table(title="Raster headers", title_justify="left", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("read", f"{h['read']:,}  (COG {h['cog']:,}, not COG {h['not_cog']:,})")
        t.add_row("unreadable", f"{h['unreadable']:,}" + (f"  e.g. {escape(', '.join(h['unreadable_sample'][:3]))}"
                                                            if h["unreadable_sample"] else ""))
        for key in ("driver", "crs", "dtype"):
            mix = sorted(h[key].items(), key=lambda kv: (-kv[1], kv[0]))
            t.add_row(key, escape(", ".join(f"{k} ({n:,})" for k, n in mix[:8])) or "-")
        parts.append(t)
    return Group(*parts)
