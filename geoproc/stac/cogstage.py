"""The ``stac`` stage any job that writes rasters can append: one item per output, then publish.

The stage follows a stage whose results are raster records (the ``cog`` stage) with lineage, so item
i is built as soon as output i exists, straight from that task's result: no raster is read again.
When the job's :class:`~geoproc.stac.publish.StacOptions` ask for no catalog, it plans no tasks.
The aggregate runs :func:`~geoproc.stac.publish.publish` on the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..model import JSON, RetryPolicy, Stage, TaskContext, TaskSpec
from .catalog import StaticCatalog
from .items import create_item, item_id
from .publish import default_collection_id, publish


def _relative(output: str, prefix: str) -> str:
    base = prefix.rstrip("/")
    return output[len(base):].lstrip("/") if output.startswith(base + "/") else output.rsplit("/", 1)[-1]


def _last_modified(url: str, storage_options: dict[str, Any]) -> str | None:
    """The source's last-modified time (the datetime of last resort), or None when unknown."""
    import datetime as dt

    from ..storage import open_fs

    try:
        fs, path = open_fs(url, storage_options)
        info = fs.info(path)
    except Exception:  # noqa: BLE001 - no time is better than a failed item; the rule goes on
        return None
    value = info.get("last_modified") or info.get("mtime")
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.isoformat() if isinstance(value, dt.datetime) else (str(value) if value else None)


def item_handler(params: JSON, ctx: TaskContext) -> JSON:
    """Build the item of one output from its predecessor's result; write it to the static catalog."""
    record = dict(ctx.predecessor or {})
    if not record.get("output"):
        raise RuntimeError(f"stac task {ctx.key} received no raster record from its predecessor")
    if not (params.get("datetime") or record.get("datetime")) and record.get("input"):
        record.setdefault("last_modified", _last_modified(record["input"], ctx.storage_options))
    item = create_item(record, collection=params["collection"], id=item_id(_relative(record["output"],
                       params["output_prefix"])), datetime=params.get("datetime"), job_id=ctx.job_id,
                       job_type=ctx.job_type)
    out: JSON = {"id": item["id"], "item": item}
    if params.get("catalog"):
        out["href"] = StaticCatalog(params["catalog"], ctx.storage_options).write_item(item)
    return out


def collection_for(params: Any) -> str:
    return params.stac_collection or default_collection_id(params.output)


def plan(params: Any, previous_keys: list[str]) -> Iterator[TaskSpec]:
    if not params.wants_stac:
        return
    for key in previous_keys:
        yield TaskSpec(key=key, parent=key, params={
            "collection": collection_for(params), "output_prefix": params.output,
            "catalog": params.stac_catalog, "datetime": params.stac_datetime})


def aggregate(params: Any, results: Iterator[JSON]) -> JSON | None:
    if not params.wants_stac:
        return None
    return publish(params, collection_for(params), (r["item"] for r in results))


STAGE = Stage("stac", handler="stac.item", plan=plan, aggregate=aggregate, lineage=True,
              retry=RetryPolicy(attempts=6, base_delay=1.0, max_delay=10.0),
              description="one STAC item per output (stac_catalog / pgstac_dsn); then load pgstac and write the collection")
HANDLERS = {"stac.item": item_handler}
