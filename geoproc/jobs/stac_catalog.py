"""stac_catalog: catalog every raster under a container or prefix as STAC, from headers only.

Stages: ``list`` (one task lists the input), then ``item`` (one task per raster, batched by the
engine: each reads the raster's header, builds its item and, with a static catalog, writes the item
file). The ``item`` stage's aggregate runs on the driver: it loads pgstac one checked batch at a time
and writes the collection, whose extent and summaries are a reduction over the items.

``input`` and ``limit`` were once called ``source`` and ``file_limit``; the old names still work.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import ConfigDict, Field

from ..model import (
    JSON,
    PARTIAL_OK,
    STORAGE_RETRY,
    JobParams,
    JobType,
    Stage,
    StageOutput,
    TaskContext,
    TaskSpec,
)
from ..stac import StacOptions, item_id, raster_record
from ..stac.publish import SECRET_PARAMS
from ..storage import listing
from ..storage.urls import Location
from ..units import utc_iso
from .stac_stage import approve_items, catalog_items, collection_id, item_result, review_base


class Params(StacOptions, JobParams):
    model_config = ConfigDict(extra="forbid")
    deprecated_aliases = {"source": "input", "file_limit": "limit"}

    input: Location = Field(..., min_length=1, description="container or prefix to catalog (az://c/p, a directory)")
    suffixes: list[str] = Field([".tif", ".tiff"], description="file name endings to catalog (case-insensitive)")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="catalog at most this many files")
    statistics: bool = Field(False, description="add band statistics and histograms (reads a decimated copy)")
    checksum: bool = Field(False, description="add file:checksum (reads every file in full)")
    footprint: bool = Field(True, description="trace the valid-data footprint when it is cheap")


def list_files(params: JSON, ctx: TaskContext) -> JSON:
    """List the rasters below ``input``: relative name, size and last-modified time, sorted by name."""
    entries, _ = listing.list_files(params["input"], ctx.storage_options, suffixes=params["suffixes"],
                                    limit=params.get("limit"))
    files = [{"name": e.rel, "size": e.size, "last_modified": utc_iso(e.last_modified)} for e in entries]
    return {"files": files, "count": len(files)}


def header_item(params: JSON, ctx: TaskContext) -> JSON:
    """Read one raster's header, build its item, and write it into the static catalog if asked."""
    url = params["url"]
    record = raster_record(url, ctx.storage_options, size=params.get("size"),
                           last_modified=params.get("last_modified"), footprint=params.get("footprint", True),
                           statistics=params.get("statistics", False), checksum=params.get("checksum", False))
    return item_result(record, ctx, collection=params["collection"], id=item_id(params["name"]),
                       datetime=params.get("datetime"), catalog=params.get("catalog"), review=params.get("review"))


def plan_list(params: Params, previous: None) -> Iterator[TaskSpec]:
    yield TaskSpec(key="list", params={"input": params.input, "suffixes": params.suffixes, "limit": params.limit})


def plan_items(params: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    base = params.input.rstrip("/")
    for result in previous.results():
        for f in result.get("files", []):
            yield TaskSpec(key=f["name"], fingerprint=f"{f.get('size')}:{f.get('last_modified')}", params={
                "url": f"{base}/{f['name']}", "name": f["name"], "size": f.get("size"),
                "last_modified": f.get("last_modified"), "collection": collection_id(params, params.input),
                "catalog": params.stac_catalog, "datetime": params.stac_datetime,
                "statistics": params.statistics, "checksum": params.checksum, "footprint": params.footprint,
                "review": review_base(params, params.input),
            })


def count_files(params: Params, results: Iterator[JSON]) -> JSON:
    return {"files": sum(r.get("count", 0) for r in results)}


def catalog_headers(params: Params, results: Iterator[JSON]) -> JSON:
    """Driver side: load pgstac and write the collection from the stream of completed items."""
    return catalog_items(params, params.input, results)


def approve_headers(params: Params, results: Iterator[JSON]) -> JSON:
    """``geoproc approve``: publish the items a ``publish=review`` run staged."""
    return approve_items(params, params.input, results)


def job_result(params: Params, values: list[JSON | None]) -> JSON:
    listed, published = values
    return {"files": (listed or {}).get("files", 0), **(published or {})}


StacCatalog = JobType(
    name="stac_catalog",
    description="Catalog every raster under a container or prefix as STAC (static catalog and/or pgstac).",
    params=Params,
    stages=(
        Stage("list", handler="stac_catalog.list", plan=plan_list, aggregate=count_files, volatile=True,
              description="list the rasters below the input"),
        Stage("item", handler="stac_catalog.item", plan=plan_items, aggregate=catalog_headers, retry=STORAGE_RETRY,
              publish=approve_headers,
              description="one STAC item per raster, from its header; then load pgstac and write the collection"),
    ),
    secret_params=SECRET_PARAMS,
    failure_policy=PARTIAL_OK,
    finalize=job_result,
)

HANDLERS = {"stac_catalog.list": list_files, "stac_catalog.item": header_item}
