"""The ``stac`` stage a job that writes rasters appends, and the item task both STAC jobs share.

Jobs that write one output from an array (``process``, ``mosaic``, ``stack``) append
:data:`OUTPUT_STAGE` instead: it catalogs the item their finalize built.

The stage follows a stage whose results are raster records (the ``cog`` stage) with lineage, so item
i is built as soon as output i exists, straight from that task's result: no raster is read again.
When the job's :class:`~geoproc.stac.publish.StacOptions` ask for no catalog, it plans no tasks.
Its aggregate, :func:`catalog_items`, loads pgstac and writes the collection on the driver; the
``stac_catalog`` job's item stage ends the same way.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import model_validator

from ..errors import NO_PREDECESSOR_RESULT, TaskError
from ..model import JSON, STORAGE_RETRY, Aggregator, Stage, TaskContext, TaskSpec
from ..stac import StaticCatalog, create_item, item_id
from ..stac.publish import StacOptions, default_collection_id, review_root, stage_preview
from ..stac.publish import publish as load_catalog
from ..storage import open_fs, redact
from ..units import utc_iso

log = logging.getLogger(__name__)


def item_result(record: JSON, ctx: TaskContext, *, collection: str, id: str, datetime: str | None,
                catalog: str | None, review: str | None = None) -> JSON:
    """An item task's result: the STAC item of one raster record, written to the static catalog if asked.

    Both STAC jobs end their item tasks here, so an item built from a ``cog`` result and one built from
    a header carry the same job fields and land in the catalog the same way. With ``review`` (the base
    of a ``publish=review`` job's preview) the item goes to the preview catalog, not the public one.
    """
    item = create_item(record, collection=collection, id=id, datetime=datetime, job_id=ctx.job_id,
                       job_type=ctx.job_type)
    return catalogued(item, ctx, catalog=catalog, review=review)


def catalogued(item: JSON, ctx: TaskContext, *, catalog: str | None, review: str | None) -> JSON:
    """An item task's result for a built ``item``: written to the preview (``review``) or the static
    catalog, when there is one."""
    out: JSON = {"id": item["id"], "item": item}
    if review:
        out["preview"] = review_root(review, ctx.job_id)
        out["href"] = StaticCatalog(out["preview"], ctx.storage_options).write_item(item)
    elif catalog:
        out["href"] = StaticCatalog(catalog, ctx.storage_options).write_item(item)
    return out


def review_base(params: Any, output: str) -> str | None:
    """What a ``publish=review`` job's preview sits beside (the public catalog, else ``output``); None
    when the job publishes at once."""
    return (params.stac_catalog or output) if params.publish == "review" else None


def collection_id(params: Any, root: str) -> str:
    """The collection the items go to: ``stac_collection``, else one named after ``root``."""
    return params.stac_collection or default_collection_id(root)


def catalog_items(params: Any, root: str, results: Iterator[JSON]) -> JSON:
    """Driver side: load pgstac and write the collection from the stream of completed item tasks; with
    ``publish=review``, only the preview's collection (the public step waits for ``geoproc approve``)."""
    if params.publish == "review":
        return stage_preview(params, collection_id(params, root), results)
    return load_catalog(params, collection_id(params, root), (r["item"] for r in results))


def approve_items(params: Any, root: str, results: Iterator[JSON]) -> JSON:
    """The public step of a reviewed job: the items from the ledger into the public catalog and pgstac."""
    return load_catalog(params, collection_id(params, root), (r["item"] for r in results), write_items=True)


def _relative(output: str, prefix: str) -> str:
    base = prefix.rstrip("/")
    return output[len(base):].lstrip("/") if output.startswith(base + "/") else output.rsplit("/", 1)[-1]


def _last_modified(url: str, storage_options: dict[str, Any]) -> str | None:
    """The source's last-modified time (the datetime of last resort), or None when unknown."""
    try:
        fs, path = open_fs(url, storage_options)
        info = fs.info(path)
    except Exception:  # noqa: BLE001 - no time is better than a failed item; the datetime rule goes on
        log.warning("no last-modified time for %s; the item's datetime must come from elsewhere", redact(url),
                    exc_info=True)
        return None
    return utc_iso(info.get("last_modified") or info.get("mtime"))


def build_item(params: JSON, ctx: TaskContext) -> JSON:
    """Build the item of one output from its predecessor's result; write it to the static catalog."""
    record = dict(ctx.predecessor or {})
    if not record.get("output"):
        raise TaskError(f"stac task {ctx.key} received no raster record from its predecessor",
                        code=NO_PREDECESSOR_RESULT)
    if not (params.get("datetime") or record.get("datetime")) and record.get("input"):
        record.setdefault("last_modified", _last_modified(record["input"], ctx.storage_options))
    return item_result(record, ctx, collection=params["collection"],
                       id=item_id(_relative(record["output"], params["output_prefix"])),
                       datetime=params.get("datetime"), catalog=params.get("catalog"), review=params.get("review"))


def plan_items(params: Any, previous_keys: list[str]) -> Iterator[TaskSpec]:
    if not params.wants_stac:
        return
    for key in previous_keys:
        yield TaskSpec(key=key, parent=key, params={
            "collection": collection_id(params, params.output), "output_prefix": params.output,
            "catalog": params.stac_catalog, "datetime": params.stac_datetime,
            "review": review_base(params, params.output)})


def catalog_steps(root: Callable[[Any], str]) -> tuple[Aggregator, Aggregator]:
    """The aggregate and the held-back public step (``Stage.publish``) of a stage whose items go to the
    collection named after ``root(params)``; both do nothing when the job asks for no catalog."""
    def aggregate(params: Any, results: Iterator[JSON]) -> JSON | None:
        return catalog_items(params, root(params), results) if params.wants_stac else None

    def publish(params: Any, results: Iterator[JSON]) -> JSON | None:
        return approve_items(params, root(params), results) if params.wants_stac else None

    return aggregate, publish


catalog_outputs, approve_outputs = catalog_steps(lambda params: params.output)
STAGE = Stage("stac", handler="stac.item", plan=plan_items, aggregate=catalog_outputs, lineage=True,
              retry=STORAGE_RETRY, publish=approve_outputs,
              description="one STAC item per output (stac_catalog / pgstac_dsn); then load pgstac and write the collection")


# --- the stage of jobs that write one output and its item (process, mosaic, stack) ----------------------


class OutputStacOptions(StacOptions):
    """The STAC options of a job that writes one output: its item goes to ``stac_catalog`` / pgstac."""

    @model_validator(mode="after")
    def _one_output(self) -> OutputStacOptions:
        if self.wants_stac and getattr(self, "format", "cog") == "tiles":
            raise ValueError("stac_catalog / pgstac_dsn catalog one output (format=cog or zarr); a tiles "
                             "output is not catalogued")
        return self


def output_root(params: Any) -> str:
    """What a one-output job's collection is named after: the output's directory."""
    return posixpath.dirname(params.output.rstrip("/")) or params.output


def plan_output_item(params: Any, previous_keys: list[str]) -> Iterator[TaskSpec]:
    if not params.wants_stac:
        return
    stem = posixpath.splitext(posixpath.basename(params.output.rstrip("/")))[0]
    for key in previous_keys:
        yield TaskSpec(key=key, parent=key, params={
            "collection": collection_id(params, output_root(params)), "id": item_id(f"{stem}.tif"),  # ndvi.tif, ndvi.zarr: "ndvi"
            "catalog": params.stac_catalog, "review": review_base(params, params.output)})


def catalog_output_item(params: JSON, ctx: TaskContext) -> JSON:
    """Catalog the item the output's finalize built (a COG's raster item, a store's datacube item)."""
    item = (ctx.predecessor or {}).get("stac_item")
    if not item:
        raise TaskError(f"stac task {ctx.key} received no item from the output's finalize",
                        code=NO_PREDECESSOR_RESULT)
    item = {**item, "id": params["id"], "collection": params["collection"]}
    return catalogued(item, ctx, catalog=params.get("catalog"), review=params.get("review"))


catalog_output, approve_output = catalog_steps(output_root)
OUTPUT_STAGE = Stage("stac", handler="stac.output_item", plan=plan_output_item, aggregate=catalog_output,
                     lineage=True, retry=STORAGE_RETRY, publish=approve_output,
                     description="the output's STAC item into the static catalog / pgstac (stac_catalog / pgstac_dsn)")
HANDLERS = {"stac.item": build_item, "stac.output_item": catalog_output_item}
