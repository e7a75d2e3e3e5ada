"""What the cog job reports: the ``cog`` stage's summary, the job result, and its rich rendering.

:func:`summarize_cogs` reduces the stream of :class:`~geoproc.jobs.cog_convert.CogResult` dicts on
the driver (counts and bytes only, names up to :data:`MAX_NAMES`); :func:`job_result` joins it with
the listing and validation summaries and names the inputs that failed, and by which stage;
:func:`render` is the job's render hook, the table ``geoproc run`` prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.markup import escape
from rich.table import Table

from ..model import JSON
from ..storage import redact
from ..units import human_bytes

MAX_NAMES = 10_000  # inputs listed by name in stage values (beyond that, counts only)


def summarize_cogs(p: Any, results: Iterator[JSON]) -> JSON:
    """The ``cog`` stage's value: files done, bytes in and out, compression ratio, tiers, warnings."""
    done = reused = 0
    b_in = b_out = 0
    tiers: dict[str, int] = {}
    warned: list[JSON] = []
    names: list[str] = []
    for r in results:
        done += 1
        reused += bool(r.get("reused"))
        b_in += r.get("input_size") or 0
        b_out += r["size"]
        tiers[r["tier"]] = tiers.get(r["tier"], 0) + 1
        if r["warnings"] and len(warned) < 100:
            warned.append({"input": r["input"], "warnings": r["warnings"]})
        if len(names) < MAX_NAMES:
            names.append(r["input"])
    return {"done": done, "reused": reused, "converted": done - reused, "bytes_in": b_in, "bytes_out": b_out,
            "compression_ratio": round(b_in / b_out, 3) if b_out else None, "tiers": tiers, "warnings": warned,
            "inputs": names}


def job_result(p: Any, values: list[JSON | None]) -> JSON:
    """The job result: the stages' summaries, and the inputs that failed with the stage that failed them.

    ``p`` is the job's :class:`~geoproc.jobs.cog.Params`.
    """
    listing, validation, cogs = (values + [None, None, None])[:3]
    listing, validation, cogs = listing or {}, validation or {}, cogs or {}
    listed = listing.get("inputs") or []
    valid = set(validation.get("inputs") or [])
    done = set(cogs.get("inputs") or [])
    failed = [{"input": i, "stage": "validate"} for i in listed if i not in valid]
    failed += [{"input": i, "stage": "cog"} for i in listed if i in valid and i not in done]
    return {
        "input": redact(p.input), "output": redact(p.output), "tier": p.tier, "target_crs": p.target_crs,
        "listed": listing.get("listed", 0), "skipped": listing.get("skipped", {}),
        "done": cogs.get("done", 0), "converted": cogs.get("converted", 0), "reused": cogs.get("reused", 0),
        # never below zero: done counts only tasks of this plan, but a listing capped by MAX_NAMES is all we see
        "failed": max(0, listing.get("listed", 0) - cogs.get("done", 0)), "failed_inputs": failed[:1000],
        "bytes_in": cogs.get("bytes_in", 0), "bytes_out": cogs.get("bytes_out", 0),
        "compression_ratio": cogs.get("compression_ratio"), "tiers": cogs.get("tiers", {}),
        "raster_types": validation.get("raster_types", {}), "warnings": cogs.get("warnings", []),
        "collection": listing.get("collection"),
        "stac": values[3] if len(values) > 3 else None,
    }


def render(result: JSON) -> Any:
    """The job result as a table, with one row per failed input and its reason."""
    t = Table(title=escape(f"COG: {result['input']} → {result['output']} ({result['tier']}, {result['target_crs']})"),
              show_header=False, title_justify="left")
    t.add_row("files listed / done / failed", f"{result['listed']} / {result['done']} / {result['failed']}")
    t.add_row("converted / reused", f"{result['converted']} / {result['reused']}")
    ratio = result.get("compression_ratio")
    t.add_row("bytes in → out", f"{human_bytes(result['bytes_in'])} → {human_bytes(result['bytes_out'])}"
              + (f"  (ratio {ratio})" if ratio else ""))
    t.add_row("raster types", ", ".join(f"{k}: {v}" for k, v in result.get("raster_types", {}).items()) or "-")
    for w in result.get("warnings", [])[:10]:
        t.add_row(f"[yellow]warning[/] {escape(w['input'])}", escape("; ".join(w["warnings"])))
    for f in result.get("failed_tasks", [])[:20]:
        t.add_row(f"[red]failed[/] {f['stage']} {escape(f['key'])}",
                  escape(f"{f['code']}: {f['message']}\n→ {f['remediation']}"))
    stac = result.get("stac") or {}
    if stac.get("static"):
        t.add_row("STAC catalog", escape(f"{stac['static'].get('url')} ({stac['static'].get('items')} items)"))
    if stac.get("pgstac"):
        pg = stac["pgstac"]
        t.add_row("pgstac", ", ".join(f"{k} {v}" for k, v in pg.items() if isinstance(v, (int, str))))
    return t
