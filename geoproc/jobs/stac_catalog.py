"""stac_catalog: catalog every raster under a container or prefix as STAC, from headers only.

Stages: ``list`` (one task lists the source), then ``item`` (one task per raster, batched by the
engine: each reads the raster's header, builds its item and, with a static catalog, writes the item
file). The ``item`` stage's aggregate runs on the driver: it loads pgstac one checked batch at a time
and writes the collection, whose extent and summaries are a reduction over the items.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from pydantic import ConfigDict, Field

from ..model import JSON, PARTIAL_OK, JobType, RetryPolicy, Stage, StageOutput, TaskContext, TaskSpec
from ..stac import StacOptions, StaticCatalog, create_item, item_id, publish, raster_record
from ..stac.publish import SECRET_PARAMS, default_collection_id
from ..storage import open_fs, redact, storage_errors


class Params(StacOptions):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(..., min_length=1, description="container or prefix to catalog (az://c/p, a directory)")
    suffixes: list[str] = Field([".tif", ".tiff"], description="file name endings to catalog (case-insensitive)")
    file_limit: int | None = Field(None, ge=1, le=10_000_000, description="catalog at most this many files")
    statistics: bool = Field(False, description="add band statistics and histograms (reads a decimated copy)")
    checksum: bool = Field(False, description="add file:checksum (reads every file in full)")
    footprint: bool = Field(True, description="trace the valid-data footprint when it is cheap")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def list_files(params: JSON, ctx: TaskContext) -> JSON:
    """List the rasters below ``source``: relative name, size and last-modified time, sorted by name."""
    source = params["source"]
    suffixes = tuple(s.lower() for s in params["suffixes"])
    with storage_errors(source, "list"):
        fs, root = open_fs(source, ctx.storage_options)
        if not fs.exists(root):
            from ..errors import SourceNotFound

            raise SourceNotFound(f"{redact(source)} does not exist")
        found = fs.find(root, detail=True)
    root = root.rstrip("/")
    files = []
    for path, info in sorted(found.items()):
        rel = path[len(root):].lstrip("/") if path.startswith(root) else path.rsplit("/", 1)[-1]
        if info.get("type") == "directory" or not rel.lower().endswith(suffixes):
            continue
        modified = info.get("last_modified") or info.get("mtime") or info.get("LastModified")
        files.append({"name": rel, "size": info.get("size"), "last_modified": _iso(modified)})
        if params.get("file_limit") and len(files) >= params["file_limit"]:
            break
    return {"files": files, "count": len(files)}


def describe(params: JSON, ctx: TaskContext) -> JSON:
    """Read one raster's header, build its item, and write it into the static catalog if asked."""
    url = params["url"]
    record = raster_record(url, ctx.storage_options, size=params.get("size"),
                           last_modified=params.get("last_modified"), footprint=params.get("footprint", True),
                           statistics=params.get("statistics", False), checksum=params.get("checksum", False))
    item = create_item(record, collection=params["collection"], id=item_id(params["name"]),
                       datetime=params.get("datetime"), job_id=ctx.job_id, job_type=ctx.job_type)
    out = {"id": item["id"], "item": item}
    if params.get("catalog"):
        out["href"] = StaticCatalog(params["catalog"], ctx.storage_options).write_item(item)
    return out


def collection_of(params: Params) -> str:
    return params.stac_collection or default_collection_id(params.source)


def plan_list(params: Params, previous: None) -> Iterator[TaskSpec]:
    yield TaskSpec(key="list", params={"source": params.source, "suffixes": params.suffixes,
                                       "file_limit": params.file_limit})


def plan_items(params: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    base = params.source.rstrip("/")
    for result in previous.results():
        for f in result.get("files", []):
            yield TaskSpec(key=f["name"], fingerprint=f"{f.get('size')}:{f.get('last_modified')}", params={
                "url": f"{base}/{f['name']}", "name": f["name"], "size": f.get("size"),
                "last_modified": f.get("last_modified"), "collection": collection_of(params),
                "catalog": params.stac_catalog, "datetime": params.stac_datetime,
                "statistics": params.statistics, "checksum": params.checksum, "footprint": params.footprint,
            })


def count_files(params: Params, results: Iterator[JSON]) -> JSON:
    return {"files": sum(r.get("count", 0) for r in results)}


def catalog_items(params: Params, results: Iterator[JSON]) -> JSON:
    """Driver side: load pgstac and write the collection from the stream of completed items."""
    return publish(params, collection_of(params), (r["item"] for r in results))


def finalize(params: Params, values: list[JSON | None]) -> JSON:
    listed, published = values
    return {"files": (listed or {}).get("files", 0), **(published or {})}


StacCatalog = JobType(
    name="stac_catalog",
    description="Catalog every raster under a container or prefix as STAC (static catalog and/or pgstac).",
    params=Params,
    stages=(
        Stage("list", handler="stac_catalog.list", plan=plan_list, aggregate=count_files, volatile=True,
              description="list the rasters below the source"),
        Stage("item", handler="stac_catalog.item", plan=plan_items, aggregate=catalog_items,
              retry=RetryPolicy(attempts=6, base_delay=1.0, max_delay=10.0),
              description="one STAC item per raster, from its header; then load pgstac and write the collection"),
    ),
    secret_params=SECRET_PARAMS,
    failure_policy=PARTIAL_OK,
    finalize=finalize,
)

HANDLERS = {"stac_catalog.list": list_files, "stac_catalog.item": describe}
