"""list_container and summarize_container: inventories of containers with millions of blobs.

Both jobs run the same three stages:

1. ``shard``   one task splits the input into prefix shards with delimiter listings;
2. ``scan``    one task per shard (dynamic fan-out) streams its listing page by page, applies the
               filters, optionally reads raster headers, writes a Parquet part (list_container) and
               returns a partial summary; the stage merges the partial summaries;
3. ``publish`` one task merges the text parts and writes ``summary.json`` (summarize_container:
               only when ``output`` is given).

A million blobs are a few dozen ledger tasks, and the driver only ever holds summaries. The ``input``
parameter was once called ``source``; the old name still works, and the result (and ``summary.json``)
names the listed location ``source``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..inventory import headers as hdr
from ..inventory import listing
from ..inventory.filters import BlobFilter, as_utc, normalize_suffix
from ..inventory.summary import Summary, empty_headers, extension_of, group_of, merge_all
from ..model import (
    ALL_OR_NOTHING,
    JSON,
    JobParams,
    JobType,
    RetryPolicy,
    Stage,
    StageOutput,
    TaskContext,
    TaskSpec,
    only_result,
)
from ..storage.faults import storage_errors
from ..storage.urls import Location
from ..units import ByteSize
from .inventory_report import render

FILTER_KEYS = ("suffixes", "min_size", "max_size", "modified_after", "modified_before")


class InventoryParams(JobParams):
    """What to list and which blobs to keep."""

    deprecated_aliases = {"source": "input"}

    input: Location = Field(..., description="container or directory: az://container/dir, /local/dir, memory://bucket")
    prefix: str = Field("", description="keep blob names (relative to input) that start with this")
    suffixes: list[str] = Field(default_factory=list, description="keep names ending with one of these (.tif, _cog.tif)")
    min_size: ByteSize | None = Field(None, description="smallest size kept, inclusive (bytes, or '10MB')")
    max_size: ByteSize | None = Field(None, description="largest size kept, inclusive (bytes, or '1GiB')")
    modified_after: dt.datetime | None = Field(None, description="keep blobs modified at or after (ISO 8601, UTC if no offset)")
    modified_before: dt.datetime | None = Field(None, description="keep blobs modified before (ISO 8601, UTC if no offset)")
    limit: int | None = Field(None, ge=1, le=1_000_000_000,
                              description="keep only the first N matching blobs in name order (lists sequentially)")
    headers: bool = Field(False, description="read each file's raster header with GDAL range requests")
    shards: int = Field(16, ge=1, le=10_000,
                        description="most listing tasks (prefix shards); raise it for large clusters")
    header_threads: int = Field(8, ge=1, le=64, description="concurrent header reads per task")

    @field_validator("input")
    @classmethod
    def _input(cls, v: str) -> str:
        return listing.check_source(v.strip())

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return v.lstrip("/")

    @field_validator("suffixes")
    @classmethod
    def _suffixes(cls, v: list[str]) -> list[str]:
        return sorted({normalize_suffix(s) for s in v if s.strip()})

    @field_validator("modified_after", "modified_before")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        return as_utc(v)

    @model_validator(mode="after")
    def _ranges(self) -> InventoryParams:
        if self.min_size is not None and self.max_size is not None and self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is larger than max_size ({self.max_size})")
        if self.modified_after and self.modified_before and self.modified_after >= self.modified_before:
            raise ValueError("modified_after must be earlier than modified_before")
        return self


class ListParams(InventoryParams):
    output: Location = Field(..., description="directory URL for inventory.parquet/, inventory.csv|jsonl, summary.json")
    format: Literal["csv", "jsonl"] = Field("csv", description="text format written beside the Parquet dataset")

    @field_validator("output")
    @classmethod
    def _output(cls, v: str) -> str:
        return listing.check_source(v.strip())


class SummarizeParams(InventoryParams):
    output: Location | None = Field(None, description="directory URL to write summary.json to (optional)")

    @field_validator("output")
    @classmethod
    def _output(cls, v: str | None) -> str | None:
        return listing.check_source(v.strip()) if v else None


# --- planning (on the driver) -----------------------------------------------------------------------


def plan_shard(params: InventoryParams, previous: None) -> Iterator[TaskSpec]:
    """One task that splits the input; fails fast here, on the driver, when the input does not exist."""
    with storage_errors(params.input, "list"):
        lister = listing.open_lister(params.input)  # the driver's own credentials
        if not lister.exists():
            raise listing.source_not_found(params.input)
    yield TaskSpec(key="plan", params={"input": params.input, "prefix": params.prefix,
                                       "shards": params.shards, "sequential": params.limit is not None})


def plan_scan(params: InventoryParams, previous: StageOutput) -> Iterator[TaskSpec]:
    """One task per shard; each carries its units, the filters and where to write its part."""
    data = params.model_dump(mode="json")
    common = {k: data[k] for k in (*FILTER_KEYS, "input", "prefix", "limit", "headers", "header_threads")}
    common["level_dir"] = listing.dirpart(params.prefix)
    common["output"] = data.get("output") if isinstance(params, ListParams) else None
    common["format"] = data.get("format", "csv")
    for i, units in enumerate((previous.value or {}).get("shards", [])):
        yield TaskSpec(key=f"{i:05d}", params={**common, "units": units, "part": f"part-{i:05d}"})


def plan_outputs(params: InventoryParams, previous: StageOutput) -> Iterator[TaskSpec]:
    """One task writing the outputs (none for summarize_container without ``output``)."""
    out = getattr(params, "output", None)
    if not out:
        return
    parts = sorted(r["part"] for r in previous.results() if r.get("part"))
    document = summary_document(params, previous.value)
    if isinstance(params, ListParams):
        yield TaskSpec(key="publish", params={"output": out, "format": params.format, "headers": params.headers,
                                              "parts": parts, "report": document})
    else:
        yield TaskSpec(key="publish", params={"output": out, "report": document})


def summary_document(params: InventoryParams, summary: JSON | None) -> JSON:
    """What the job returns and ``summary.json`` holds: the request and the merged summary."""
    data = params.model_dump(mode="json")
    return {"source": params.input, "prefix": params.prefix,
            "filters": {k: data[k] for k in (*FILTER_KEYS, "limit") if data[k] not in (None, [])},
            "headers": params.headers, "summary": summary}


# --- handlers (on workers) ----------------------------------------------------------------------------


def shard(params: JSON, ctx: TaskContext) -> JSON:
    """Split the input into at most ``shards`` groups of listing units."""
    with storage_errors(params["input"], "list"):
        lister = listing.open_lister(params["input"], ctx.storage_options)
        if not lister.exists():
            raise listing.source_not_found(params["input"])
        if params.get("sequential"):  # a limit means "the first N in name order": one ordered listing
            units: list[listing.Unit] = [("tree", params["prefix"])]
        else:
            units = listing.plan_units(lister, params["prefix"], params["shards"])
    groups = listing.group_units(units, params["shards"])
    return {"units": len(units), "shards": [[list(u) for u in g] for g in groups]}


def scan(params: JSON, ctx: TaskContext) -> JSON:
    """List one shard, filter, (read headers,) write its part and return its partial summary."""
    from ..inventory import output  # pyarrow: loaded by the tasks that write only

    lister = listing.open_lister(params["input"], ctx.storage_options)
    keep = BlobFilter.from_params(params)
    with_headers = bool(params.get("headers"))
    summary = Summary(headers=empty_headers() if with_headers else None)
    writer = output.PartWriter(params["output"], params["part"], params["format"], with_headers,
                               ctx.storage_options) if params.get("output") else None
    limit, level_dir = params.get("limit"), params["level_dir"]
    page: list[listing.Blob] = []

    def flush() -> None:
        headers = hdr.read_headers([lister.url(b.name) for b in page], ctx.storage_options,
                                   params.get("header_threads", 8)) if with_headers else [None] * len(page)
        for b, h in zip(page, headers, strict=True):
            summary.add(b, group_of(b.name, level_dir), h)
        if writer is not None:
            writer.write([_record(lister, b, h) for b, h in zip(page, headers, strict=True)])
        page.clear()

    kept = 0
    try:
        with storage_errors(params["input"], "list"):
            for unit in params["units"]:
                for blob in lister.iter_unit((unit[0], unit[1])):
                    summary.scanned += 1
                    if not keep(blob):
                        continue
                    if limit is not None and kept >= limit:
                        summary.hit_limit = True
                        break
                    kept += 1
                    page.append(blob)
                    if len(page) >= listing.PAGE:
                        flush()
                if summary.hit_limit:
                    break
            flush()
        part = None
        if writer is not None:
            with storage_errors(params["output"], "write"):
                part = writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return {"summary": summary.to_json(), "part": part, "rows": kept}


def _record(lister: listing.Lister, b: listing.Blob, header: JSON | None) -> JSON:
    rec = {"url": lister.url(b.name), "name": b.name, "extension": extension_of(b.name), "size": b.size,
           "etag": b.etag, "last_modified": b.last_modified, "content_type": b.content_type}
    if header is not None:
        rec.update(header)
    return rec


def write_outputs(params: JSON, ctx: TaskContext) -> JSON:
    """Write the merged outputs (list_container) or just ``summary.json`` (summarize_container)."""
    from ..inventory.output import (
        merge_parts,  # pyarrow: loaded by the tasks that write only
        write_summary,
    )

    with storage_errors(params["output"], "write"):
        if "parts" in params:
            return merge_parts(params["output"], params["format"], params["parts"], params["headers"],
                               params["report"], ctx.storage_options)
        return {"summary": write_summary(params["output"], params["report"], ctx.storage_options)}


# --- aggregation and result ------------------------------------------------------------------------------


def merge_summaries(params: InventoryParams, results: Iterator[JSON]) -> JSON:
    """Merge partial summaries as they stream from the ledger (one summary in memory)."""
    return merge_all((r["summary"] for r in results), headers=params.headers).to_json()


def job_result(params: InventoryParams, values: list[JSON | None]) -> JSON:
    shards, summary, outputs = values
    result = summary_document(params, summary)
    result["shards"] = len((shards or {}).get("shards", []))
    result["outputs"] = outputs or {}
    return result


def _stages(publish_description: str) -> tuple[Stage, ...]:
    return (
        Stage("shard", handler="inventory.shard", plan=plan_shard, aggregate=only_result, volatile=True,
              retry=RetryPolicy(attempts=4), description="split the input into prefix shards"),
        Stage("scan", handler="inventory.scan", plan=plan_scan, aggregate=merge_summaries, heavy=True, volatile=True,
              retry=RetryPolicy(attempts=4), description="list each shard, filter, summarize (and write parts)"),
        Stage("publish", handler="inventory.publish", plan=plan_outputs, aggregate=only_result, volatile=True,
              description=publish_description),
    )


ListContainer = JobType(
    name="list_container",
    description="Inventory of a container or directory: per-blob records (optionally raster headers) written "
                "as Parquet and CSV/JSON lines, plus a summary.",
    params=ListParams,
    stages=_stages("merge the parts into inventory.csv|jsonl and write summary.json"),
    hash_exclude=frozenset({"shards", "header_threads"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
    render=render,
)

SummarizeContainer = JobType(
    name="summarize_container",
    description="Summary of a container or directory: totals, per extension, per top-level prefix, size buckets, "
                "extremes; with headers also CRS, dtype and COG mix.",
    params=SummarizeParams,
    stages=_stages("write summary.json (when output is given)"),
    hash_exclude=frozenset({"shards", "header_threads"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
    render=render,
)

HANDLERS = {"inventory.shard": shard, "inventory.scan": scan, "inventory.publish": write_outputs}
