"""zarr_ingest: NetCDF or Zarr into a cloud-ready Zarr v3 datacube, rechunked, CF kept, one task per region.

    geoproc run zarr_ingest --set input=sst.nc --set output=sst.zarr
    geoproc run zarr_ingest --set input=sst.nc --set output=sst.zarr --set chunks='{"time": 1, "lat": 128, "lon": 128}'
    geoproc run zarr_ingest --set input=monthly/ --set output=all.zarr --set dry_run=true   # the plan only

Several files (``inputs``, or the files under a directory sorted by name) follow each other along their
time axis; they must share one grid (``CUBE_GRIDS_DIFFER`` names the first that does not).

Stages:

1. ``template``  one task writes the store's metadata, coordinates and the variables off the spatial
                 dimensions (refusing a store another job or tool wrote, unless ``overwrite``);
2. ``regions``   one task per region of whole chunks (:mod:`geoproc.cube.store`): it reads its block of
                 every spatial variable from the source and writes it;
3. ``finalize``  one task consolidates the metadata.

The source is decoded the CF way (:mod:`geoproc.cube.sources`: cftime calendars, year-0 origins); its
own chunking is dropped, the store's is ``chunks`` (default: 1 along time, 256 x 256 spatially). The job
id comes from the parameters, every task's fingerprint from the source's version: a changed source is
ingested again, a crash resumes with the regions not yet written, a finished job computes nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, model_validator

from ..cube import sources as src
from ..cube import store as cs
from ..errors import CUBE_EMPTY, CUBE_UNREADABLE, InvalidInput
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
    WrittenFile,
    only_result,
)
from ..raster import regions as rg
from ..raster.heap import task_memory
from ..stac.cube import create_dataset_item
from ..storage import is_local, local_path, options_for, redact, resolve_storage_options, version_of
from ..storage.listing import is_directory, list_files
from ..storage.urls import Location, canonical
from ..units import ByteSize, utc_iso
from .write import publish_json

if TYPE_CHECKING:
    import xarray as xr

REGION_BYTES = 16 * 2**20
SUFFIXES = (".nc", ".nc4", ".cdf", ".h5", ".hdf5")


class Params(JobParams):
    input: Location | None = Field(None, description="a NetCDF file (classic or netCDF-4), a Zarr store, or a "
                                                     "directory / prefix of NetCDF files along time")
    inputs: list[Location] | None = Field(None, description="NetCDF files along time, in order (instead of input)")
    suffixes: list[str] = Field(list(SUFFIXES), description="file suffixes listed under an input directory")
    dry_run: bool = Field(False, description="plan only: chunks, regions and bytes, nothing written")
    output: Location = Field(..., description="the Zarr v3 store to write")
    variables: list[str] | None = Field(None, description="the variables to ingest (default: every one on the "
                                                          "spatial dimensions)")
    chunks: dict[str, int] | None = Field(None, description="chunk per dimension (default: 1 along time, 256 x 256 "
                                                            "spatially)")
    lon_180: bool = Field(False, description="turn 0..360 longitudes into -180..180 (sorted)")
    crs: str | None = Field(None, description="the CRS of a file without a CF grid_mapping (e.g. EPSG:4326)")
    decode_packed: bool = Field(False, description="store packed variables decoded (floats) instead of as declared")
    region_bytes: ByteSize = Field(ByteSize(REGION_BYTES), ge=2**16, description="about how much one region "
                                                                                  "task reads and writes")
    overwrite: bool = Field(False, description="replace a store this job did not write")

    _planned: tuple[Any, ...] | None = PrivateAttr(None)
    _files: list[str] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_source(self) -> Params:
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either input (a file, store or directory) or inputs (files along time)")
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs is empty; give the files along time, in order")
        return self


def dataset_of(d: JSON, storage_options: dict | None) -> tuple[xr.Dataset, str, str]:
    """The source's variables to ingest, lazily, and its (y, x) dimension names (``d["files"]``: one
    file or store, or several files along time)."""
    files = d["files"]
    where = redact(files[0]) + (f" (and {len(files) - 1} more)" if len(files) > 1 else "")
    datasets = [src.open_source(u, storage_options=storage_options) for u in files]
    y, x = src.spatial_dims(datasets[0], where)
    ds = datasets[0] if len(files) == 1 else src.along_time(datasets, files, y, x)
    ds = src.select(ds, d["variables"], y, x, where)
    empty = [str(k) for k, n in ds.sizes.items() if n == 0]
    if empty:
        raise InvalidInput(f"{where}: dimension {', '.join(empty)} has length 0", code=CUBE_EMPTY)
    if d.get("lon_180"):
        ds = src.lon_to_180(ds, x)
    ds = src.with_crs(ds, y, x, d.get("crs"), where)
    if d.get("decode_packed"):
        ds = src.unpacked(ds)
    return ds, y, x


def planned(p: Params) -> tuple[Any, ...]:
    """(dataset, y, x, chunks, regions, fingerprint), built once per run in the driver (headers only)."""
    if p._planned is None:
        from dask.base import tokenize

        so = resolve_storage_options()
        ds, y, x = dataset_of(_source(p), so)
        chunks = cs.chunking(ds, y, x, p.chunks)
        regions = cs.plan_regions(ds, y, x, chunks, int(p.region_bytes))
        versions = [version_of(u, so) for u in _source(p)["files"]]
        p._planned = (ds, y, x, chunks, regions, tokenize(versions, chunks))
    return p._planned


def files_of(p: Params, storage_options: dict | None) -> list[str]:
    """The source files, in order: ``inputs``, the one ``input``, or the files under it sorted by name."""
    if p.inputs is not None:
        return [canonical(u) for u in p.inputs]
    url = canonical(p.input or "")
    if url.rstrip("/").lower().endswith(".zarr") or not is_directory(url, storage_options):
        return [url]
    files, _ = list_files(url, storage_options, suffixes=p.suffixes)
    if not files:
        raise InvalidInput(f"no files ({', '.join(p.suffixes)}) under {redact(url)}", code=CUBE_UNREADABLE)
    return sorted(f.url for f in files)


def _source(p: Params) -> JSON:
    if p._files is None:
        p._files = files_of(p, resolve_storage_options())
    return {"files": p._files, "variables": p.variables, "lon_180": p.lon_180, "crs": p.crs,
            "decode_packed": p.decode_packed}


def plan_template(p: Params, previous: None) -> Iterator[TaskSpec]:
    _, y, x, chunks, regions, token = planned(p)
    if p.dry_run:
        return
    yield TaskSpec(key="template", fingerprint=token, params={
        "source": _source(p), "output": p.output, "chunks": chunks, "overwrite": p.overwrite, "regions": len(regions)})


def plan_regions(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    ds, y, x, chunks, regions, token = planned(p)
    if p.dry_run:
        return
    itemsize = max((ds[v].dtype.itemsize for v in ds.data_vars), default=8)
    made = rg.template_id(previous)  # a template made again: its regions are written again
    for r in regions:
        cells = math.prod(b - a for a, b in r.slices.values())
        yield TaskSpec(key=r.key, fingerprint=f"{token}:{made}" if made else token, params={
            "source": _source(p), "output": p.output, "slices": {d: list(s) for d, s in r.slices.items()},
            "buffer_bytes": cells * itemsize + (1 << 20)})  # one variable's region: what its heap reuses


def plan_finalize(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    _, y, x, _, _, token = planned(p)
    if p.dry_run:
        return
    yield TaskSpec(key="finalize", fingerprint=token, params={"output": p.output, "y": y, "x": x,
                                                              "item": item_url(p.output)})


def item_url(store: str) -> str:
    """The STAC item beside the store: ``sst.zarr.json`` for ``sst.zarr``."""
    return store.rstrip("/") + ".json"


def template(params: JSON, ctx: TaskContext) -> JSON:
    ds, y, x = dataset_of(params["source"], ctx.storage_options)
    return rg.new_template(cs.write_template(ds, params["output"], y=y, x=x, chunks=params["chunks"],
                                             job_id=ctx.job_id, overwrite=params["overwrite"],
                                             storage_options=ctx.storage_options))


def region(params: JSON, ctx: TaskContext) -> JSON:
    ds, y, x = dataset_of(params["source"], ctx.storage_options)
    r = cs.CubeRegion(ctx.key, {d: (int(a), int(b)) for d, (a, b) in params["slices"].items()})
    with task_memory(buffer_bytes=int(params.get("buffer_bytes", 32 << 20))):
        return cs.write_region(ds, params["output"], r, y=y, x=x, storage_options=ctx.storage_options)


def finalize(params: JSON, ctx: TaskContext) -> JSON:
    """Consolidate the store's metadata and write its STAC item (datacube extension) beside it."""
    import datetime as dt

    import xarray as xr

    metadata_size = rg.finish_store(params["output"], ctx.storage_options)
    store = params["output"]
    so = None if is_local(store) else options_for(store, ctx.storage_options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(local_path(store) if is_local(store) else store, consolidated=False, storage_options=so,
                          decode_times=xr.coders.CFDatetimeCoder(use_cftime=True), decode_coords="all")
    item = create_dataset_item(redact(store), ds, y=params["y"], x=params["x"], job_id=ctx.job_id,
                               written=utc_iso(dt.datetime.now(dt.UTC)))
    publish_json(item, params["item"], ctx)
    return {"output": redact(store), "item": redact(params["item"]), "metadata_size": metadata_size}


def store_output(p: Params, result: JSON) -> list[WrittenFile]:
    """The template lives on the store: when it is gone, it is made again, and the regions with it."""
    return [(rg.store_metadata(p.output), None, None)]


def final_output(p: Params, result: JSON) -> list[WrittenFile]:
    """The finished store: its consolidated metadata (a template made again is smaller)."""
    return [(rg.store_metadata(p.output), result.get("metadata_size"), None)]


def count_regions(p: Params, results: Iterator[JSON]) -> JSON:
    out = {"regions": 0, "bytes": 0}
    for r in results:
        out["regions"] += 1
        out["bytes"] += r["bytes"]
    return out


def plan_summary(p: Params) -> JSON:
    """What the job would write: sizes, chunks, regions and bytes (the ``dry_run`` result)."""
    ds, y, x, chunks, regions, _ = planned(p)
    spatial = [v for v in ds.data_vars if {y, x} <= set(ds[v].dims)]
    nbytes = int(sum(ds[v].dtype.itemsize * ds[v].size for v in spatial))
    return {"dry_run": True, "output": redact(p.output), "inputs": len(_source(p)["files"]),
            "sizes": {str(d): int(n) for d, n in ds.sizes.items()}, "chunks": chunks, "variables": spatial,
            "regions": len(regions), "bytes": nbytes, "region_bytes": nbytes // max(1, len(regions)),
            "spatial_dims": [y, x]}


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    if p.dry_run:
        return plan_summary(p)
    tmpl, written, final = values
    return {"output": redact(p.output), **(tmpl or {}), **(written or {}), "item": (final or {}).get("item")}


HANDLERS = {"zarr_ingest.template": template, "zarr_ingest.region": region, "zarr_ingest.finalize": finalize}

ZarrIngest = JobType(
    name="zarr_ingest",
    description="NetCDF or Zarr into a Zarr v3 datacube, rechunked (time = 1, 256 x 256 by default), CF kept, one "
                "task per region.",
    params=Params,
    stages=(
        Stage("template", handler="zarr_ingest.template", plan=plan_template, aggregate=only_result,
              outputs=store_output,
              description="the store's metadata, coordinates and the variables off the spatial dimensions"),
        Stage("regions", handler="zarr_ingest.region", plan=plan_regions, aggregate=count_regions, heavy=True,
              retry=RetryPolicy(attempts=3), description="read and write each region of whole chunks"),
        Stage("finalize", handler="zarr_ingest.finalize", plan=plan_finalize, aggregate=only_result,
              outputs=final_output, description="consolidate the store's metadata; its STAC item (datacube extension)"),
    ),
    hash_exclude=frozenset({"overwrite"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
