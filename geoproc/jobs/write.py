"""write: a lazy xarray computation into a Zarr store, one COG, or COG tiles, one ledger task per region.

Stages:

1. ``template`` one task prepares the output: the Zarr store's metadata and coordinates; for a COG or
                tiles, the check that nothing another job or tool wrote is in the way (unless
                ``overwrite``);
2. ``regions``  one task per region of whole chunks (key ``r{row}c{col}``): the worker computes its
                slice of the array and writes it (a Zarr region; a tile COG; for one COG, its blocks
                compressed with the COG's codec, with the overview levels the region holds whole,
                :mod:`geoproc.raster.stitch`); its statistics' running counts are in the result, and
                the stage merges them;
3. ``finalize`` one task finishes the output: consolidates the Zarr metadata; computes the COG's last
                small overview levels and stitches every compressed block into it (nothing is
                recompressed; GDAL's COG driver is never fed from Dask, whose overviews come out
                empty, rioxarray#410), checks it, stamps it with the job id and publishes it
                atomically; writes the tiles' VRT and footprints.

The job is named by the computation, not by how it was built: ``token`` is the array's Dask token
(geoproc opens rasters with content-addressed names), so the same cell run twice is the same job and
computes nothing the second time, and after a crash only unwritten regions run. The array itself is
not a parameter: ``geoproc.write`` hands it to the handlers (:func:`handlers_for_array`); a write job
cannot be resumed from the command line, only by calling ``geoproc.write`` again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import os
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import rasterio
from affine import Affine
from pydantic import Field, model_validator

from ..errors import NOT_LAZY, WRITE_NEEDS_ARRAY, InvalidInput
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
from ..raster import footprint, stitch
from ..raster import regions as rg
from ..raster.checks import check_cog
from ..raster.cog import PROVENANCE_TAG
from ..raster.heap import task_memory
from ..raster.overviews import overview_levels
from ..raster.profiles import BLOCKSIZE, cog_options, part_options
from ..raster.stats import BandStats
from ..raster.writers import write_cog
from ..stac.cube import create_cube_item
from ..stac.items import create_item
from ..storage import join, open_fs, publish, redact, sha256_file, storage_errors
from ..storage.urls import Location, is_local, local_path
from ..units import ByteSize, human_bytes, utc_iso
from . import large_raster_tasks

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

Format = Literal["zarr", "cog", "tiles"]
ASSEMBLY_CACHE = 64 * 2**20  # GDAL block cache of the COG assembly (as a large_raster assembly's at most)


class Params(JobParams):
    token: str = Field(..., min_length=8, description="the Dask token of the computation (set by geoproc.write)")
    output: Location = Field(..., description="Zarr store URL (zarr), the .tif URL (cog), or a directory (tiles)")
    format: Format = Field("zarr", description="zarr, cog (one COG) or tiles (one COG per region and a VRT)")
    name: str = Field("data", min_length=1, max_length=100, description="name of the array in a Zarr store")
    chunks: tuple[int, int] = Field(..., description="chunk edge (y, x) in pixels: Zarr chunks; COG regions' unit "
                                                    "(whole 512 blocks)")
    region_bytes: ByteSize = Field(ByteSize(rg.REGION_BYTES), ge=2**16,
                                   description="about how much output one region task computes and holds")
    grid: dict[str, Any] = Field(..., description="output grid: crs (WKT), transform, shape [y, x]")
    bands: int = Field(1, ge=1, description="number of bands (1 for a (y, x) array)")
    dtype: str = Field(..., description="data type of the array")
    nodata: float | str | None = Field(None, description="nodata of the array (a number, 'nan' or none)")
    tier: Literal["analysis", "archive"] = Field("analysis", description="COG compression tier (DEFLATE or ZSTD)")
    overview_resampling: str = Field("average", description="GDAL kernel of the COG overviews")
    gdal_threads: int = Field(2, ge=1, le=64, description="GDAL threads of the COG assembly")
    band_names: list[str] | None = Field(None, description="names of the bands (None for a (y, x) array)")
    overwrite: bool = Field(False, description="replace an output this job did not write")

    @model_validator(mode="after")
    def _output_fits_format(self) -> Params:
        if self.format == "cog" and not self.output.lower().endswith((".tif", ".tiff")):
            raise ValueError(f"output={self.output!r}: a COG output is a .tif URL")
        return self

    def geobox(self) -> GeoBox:
        return geobox_of(self.grid)

    def nodata_value(self) -> float | None:
        return None if self.nodata is None else float(self.nodata)

    def stem(self) -> str:
        base = posixpath.basename(self.output.rstrip("/"))
        return posixpath.splitext(base)[0] if self.format == "cog" else base

    def parts(self) -> str:
        """Where the COG's parts wait for the assembly (removed once it is published)."""
        return join(posixpath.dirname(self.output), f".{self.stem()}.parts")

    def item(self) -> str:
        """The STAC item written beside the output, in its directory: ``ndvi.json`` for ``ndvi.tif``,
        ``ndvi.zarr.json`` for the store ``ndvi.zarr`` (so a COG and a store of one name keep their own)."""
        return join(posixpath.dirname(self.output.rstrip("/")), f"{self.stem()}.json")



def geobox_of(grid: JSON) -> GeoBox:
    """The odc-geo ``GeoBox`` of a write's ``grid`` parameter (crs, transform, shape [y, x])."""
    from odc.geo.geobox import GeoBox  # odc-geo: loaded by the planning driver and region tasks only

    h, w = grid["shape"]
    return GeoBox((h, w), Affine(*grid["transform"][:6]), grid["crs"])


def stamp(job_id: str) -> str:
    """What an output carries (the provenance GeoTIFF tag) to be recognised as this job's."""
    return f"write:{job_id}"


def nodata_param(nodata: Any) -> float | str | None:
    """A nodata value as a job parameter: NaN as ``"nan"`` (job ids are hashed from strict JSON)."""
    if nodata is None:
        return None
    return "nan" if math.isnan(float(nodata)) else float(nodata)


def write_params(obj: Any, output: str, *, format: str = "zarr", name: str = "data",
                 chunks: tuple[int, int] | None = None, region_bytes: int | str = rg.REGION_BYTES,
                 overwrite: bool = False, memory_limit: int | str = "256MB", **options: Any) -> tuple[Params, Any]:
    """The validated parameters of a write of ``obj`` to ``output``, and the (chunked) array it computes.

    The job id comes from the array's Dask token plus the output and these options. An array held in
    memory above ``memory_limit`` is refused (``NOT_LAZY``): every region task would carry all of it.
    """
    from dask.base import tokenize

    arr = rg.check_writable(obj)
    if arr.chunks is None:
        limit = int(ByteSize._validate(memory_limit, None)) if isinstance(memory_limit, str) else int(memory_limit)
        if arr.nbytes > limit:
            raise InvalidInput(f"the array is in memory ({human_bytes(arr.nbytes)}, above memory_limit "
                               f"{human_bytes(limit)}); chunk it, e.g. obj.chunk({{'y': 1024, 'x': 1024}}), or "
                               "open its rasters with geoproc.open(), which is lazy.", code=NOT_LAZY)
    if chunks is None and format in ("cog", "tiles"):
        chunks = (BLOCKSIZE, BLOCKSIZE)  # regions of whole COG blocks
    size = rg.zarr_chunks(arr, chunks)
    if arr.chunks is None:
        arr = arr.chunk({"y": size[0], "x": size[1]})
    if format == "cog":  # a COG's regions are whole blocks, whose parts its assembly stitches
        size = (-(-size[0] // BLOCKSIZE) * BLOCKSIZE, -(-size[1] // BLOCKSIZE) * BLOCKSIZE)
    gb = arr.odc.geobox
    model = Write.validate({
        "token": tokenize(arr), "output": output, "format": format, "name": name, "chunks": size,
        "region_bytes": region_bytes, "overwrite": overwrite, "bands": arr.sizes.get("band", 1),
        "dtype": arr.dtype.name, **options,
        "nodata": nodata_param(arr.rio.nodata),
        "band_names": [str(b) for b in arr.band.values] if "band" in arr.dims else None,
        "grid": {"crs": gb.crs.to_wkt(), "transform": list(gb.transform)[:6], "shape": list(gb.shape)}})
    return model, arr


def plan_template(p: Params, previous: None) -> Iterator[TaskSpec]:
    target = join(p.output, f"{p.stem()}.vrt") if p.format == "tiles" else p.output
    shape = ([p.bands] if p.band_names is not None else []) + list(p.grid["shape"])
    yield TaskSpec(key="template", params={"format": p.format, "output": target, "name": p.name,
                                           "chunks": list(p.chunks), "overwrite": p.overwrite, "shape": shape,
                                           "dtype": p.dtype})


def plan_regions(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    itemsize = np.dtype(p.dtype).itemsize
    transform = Affine(*p.grid["transform"][:6])
    common = {"format": p.format, "output": p.output, "name": p.name, "crs": p.grid["crs"], "nodata": p.nodata,
              "tier": p.tier, "overview_resampling": p.overview_resampling}
    made = rg.template_id(previous)
    regions = rg.plan_regions(p.geobox(), p.chunks, bands=p.bands, itemsize=itemsize,
                              region_bytes=int(p.region_bytes), pow2=p.format == "cog")
    levels = cog_region_levels(p, regions) if p.format == "cog" else 0
    for r in regions:
        dest = None
        if p.format == "cog":
            dest = join(p.parts(), f"{r.key}.tif")
        elif p.format == "tiles":
            dest = join(p.output, f"{p.stem()}_{r.key}.tif")
        at = transform @ Affine.translation(r.x[0], r.y[0])
        yield TaskSpec(key=r.key, params={**common, "row": r.row, "col": r.col, "y": list(r.y), "x": list(r.x),
                                          "dest": dest, "transform": list(at)[:6], "levels": levels,
                                          "dtype": p.dtype}, fingerprint=made)


def cog_region_levels(p: Params, regions: list[rg.Region]) -> int:
    """How many overview levels each region of a COG computes and compresses itself
    (:func:`~geoproc.raster.stitch.region_levels`); one region holds them all."""
    h, w = p.grid["shape"]
    total = overview_levels(w, h)
    if len(regions) == 1:
        return total
    first, edge = regions[0], 2**30  # one row (or column) of regions: that side has no inner edge
    rows = (first.y[1] - first.y[0]) // BLOCKSIZE if any(r.row for r in regions) else edge
    cols = (first.x[1] - first.x[0]) // BLOCKSIZE if any(r.col for r in regions) else edge
    return stitch.region_levels(rows, cols, p.overview_resampling, total)


def plan_finalize(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    if p.format == "zarr":
        yield TaskSpec(key="finalize", params={
            "format": p.format, "output": p.output, "stats": previous.value, "name": p.name, "dtype": p.dtype,
            "crs": p.grid["crs"], "transform": list(p.grid["transform"])[:6], "shape": list(p.grid["shape"]),
            "bands": p.band_names, "chunks": list(p.chunks), "nodata": p.nodata, "item": p.item()})
        return
    h, w = p.grid["shape"]
    keep = ("key", "row", "col", "url", "transform", "shape", "inner", "bounds", "bbox_wgs84", "size", "sha256",
            "origin", "levels")
    tiles = [{k: r.get(k) for k in keep} for r in previous.results()]
    stats = previous.value
    yield TaskSpec(key="finalize", params={
        "format": p.format, "mode": "single" if p.format == "cog" else "tiles", "output": p.output,
        "stem": p.stem(), "parts": p.parts(), "tiles": tiles, "tier": p.tier, "raster_type": "continuous",
        "overview_resampling": p.overview_resampling, "gdal_threads": p.gdal_threads,
        "item": p.item() if p.format == "cog" else None, "cache_bytes": ASSEMBLY_CACHE, "stats": stats and {"counts": stats["counts"], "covered": stats["pixels"]},
        "grid": {"crs_wkt": p.grid["crs"], "transform": list(p.grid["transform"])[:6], "width": w, "height": h,
                 "count": p.bands, "dtype": p.dtype, "nodata": p.nodata_value(), "colorinterp": None,
                 "descriptions": p.band_names}})


# --- handlers (on workers; the array comes from geoproc.write) ------------------------------------------


def _need(obj: xr.DataArray | None) -> xr.DataArray:
    if obj is None:
        raise InvalidInput("a write job runs from the Python session that holds its array; call "
                           "geoproc.write(array, output) again to resume it.", code=WRITE_NEEDS_ARRAY)
    return obj


def template(params: JSON, ctx: TaskContext, obj: xr.DataArray | None = None) -> JSON:
    """Prepare the output: a Zarr template (from the array), or the check that no foreign file is in the
    way of a COG or tiles (which needs no array: a job that rebuilds it passes None)."""
    if params["format"] == "zarr":
        return rg.new_template(rg.write_template(
            _need(obj), params["output"], name=params["name"], chunks=tuple(params["chunks"]), job_id=ctx.job_id,
            overwrite=params["overwrite"], storage_options=ctx.storage_options))
    rg.refuse_foreign_raster(params["output"], stamp(ctx.job_id), params["overwrite"], ctx.storage_options)
    return {"output": redact(params["output"]), "shape": params["shape"], "dtype": params["dtype"]}


def region(params: JSON, ctx: TaskContext, obj: xr.DataArray | None = None, data: np.ndarray | None = None) -> JSON:
    """Compute one region and write it: a Zarr region, a part of the COG, or a tile COG.

    ``data`` is the region's pixels when they were computed otherwise (a user's function with its
    halo); ``obj`` then only gives the grid, bands and dtype.
    """
    with task_memory():
        return _region(params, ctx, _need(obj), data)


def _region(params: JSON, ctx: TaskContext, arr: xr.DataArray, data: np.ndarray | None) -> JSON:
    r = rg.Region(params["row"], params["col"], tuple(params["y"]), tuple(params["x"]))
    if params["format"] == "zarr":
        return rg.write_zarr_region(arr, params["output"], r, name=params["name"], storage_options=ctx.storage_options,
                                    data=data)
    data = rg.compute_region(arr, r, ctx.storage_options) if data is None else data
    data = data if data.ndim == 3 else data[np.newaxis]
    nodata = None if params["nodata"] is None else float(params["nodata"])
    counted = rg.count_stats(data, nodata)
    h, w = data.shape[1:]
    out: JSON = {"key": ctx.key, "row": r.row, "col": r.col, "transform": params["transform"], "shape": [h, w],
                 "inner": [0, 0, w, h], **counted}
    if params["format"] == "cog":
        return {**out, **_cog_parts(data, params, ctx, nodata)}
    with tempfile.TemporaryDirectory(prefix="geoproc-region-") as tmp:
        local = os.path.join(tmp, f"{ctx.key}.tif")
        opts = cog_options(params["tier"], str(data.dtype), overview_resampling=params["overview_resampling"],
                           raster_type="continuous")
        write_cog(data, local, crs=params["crs"], transform=params["transform"], nodata=nodata, options=opts)
        del data
        facts = check_cog(local)
        out["bounds"] = facts["bounds"]
        out["bbox_wgs84"] = footprint.bbox_wgs84(params["crs"], tuple(facts["bounds"]))
        out["size"], out["sha256"] = os.path.getsize(local), sha256_file(local)
        publish(local, params["dest"], ctx.storage_options, move=True)
    out["url"] = redact(params["dest"])
    return out


def level_url(part: str, level: int) -> str:
    """Where a region's part of overview ``level`` goes, beside its full-resolution part."""
    return part if level == 0 else f"{part[:-len('.tif')]}.l{level}.tif"


def _cog_parts(data: np.ndarray, params: JSON, ctx: TaskContext, nodata: float | None) -> JSON:
    """Compress a region of the COG into its parts (:func:`~geoproc.raster.stitch.write_region`): the
    full resolution and the overview levels it holds whole, with the COG's codec, so the assembly only
    copies their blocks."""
    opts = part_options(params["tier"], str(data.dtype))
    with tempfile.TemporaryDirectory(prefix="geoproc-region-") as tmp:
        files = stitch.write_region(data, tmp, crs=params["crs"], transform=params["transform"], nodata=nodata,
                                    options=opts, levels=params["levels"], resampling=params["overview_resampling"])
        del data
        size, digest = os.path.getsize(files[0]), sha256_file(files[0])
        for k, f in reversed(list(enumerate(files))):  # the full resolution last: its part marks the region done
            publish(f, level_url(params["dest"], k), ctx.storage_options, move=True)
    return {"url": redact(params["dest"]), "size": size, "sha256": digest, "levels": len(files) - 1,
            "origin": [params["y"][0], params["x"][0]]}


def finalize(params: JSON, ctx: TaskContext) -> JSON:
    """Finish the output: consolidate the Zarr metadata, or assemble the COG / the tiles' VRT."""
    now = utc_iso(dt.datetime.now(dt.UTC))
    if params["format"] == "zarr":
        metadata_size = rg.finish_store(params["output"], ctx.storage_options)
        stats = params.get("stats")
        band_stats = BandStats.from_json(stats["counts"]).result(stats["pixels"]) if stats else None
        item = create_cube_item(redact(params["output"]), crs=params["crs"], transform=params["transform"],
                                shape=params["shape"], name=params["name"], dtype=params["dtype"],
                                bands=params["bands"], chunks=params["chunks"], nodata=params["nodata"],
                                datetime=now, job_id=ctx.job_id)
        publish_json(item, params["item"], ctx)
        return {"output": params["output"], "band_stats": band_stats, "item": redact(params["item"]), "stac_item": item,
                "metadata_size": metadata_size}
    if params["format"] == "tiles":
        return large_raster_tasks.assemble(params, ctx)
    result = assemble_cog(params, ctx, tags={PROVENANCE_TAG: stamp(ctx.job_id)})
    item = create_item({**result, "last_modified": now, "band_names": params["grid"].get("descriptions")},
                       job_id=ctx.job_id, job_type="write")
    publish_json(item, params["item"], ctx)
    return {**result, "item": redact(params["item"]), "stac_item": item}


def assemble_cog(params: JSON, ctx: TaskContext, *, tags: dict[str, str]) -> JSON:
    """The COG stitched from its regions' parts (:func:`~geoproc.raster.stitch.stitch_cog`): the levels
    the regions did not compute are computed from the deepest one's mosaic, every block is copied as
    it was compressed, then the COG is checked, checksummed and published, and the parts removed."""
    grid, tiles = params["grid"], sorted(params["tiles"], key=lambda t: (t["row"], t["col"]))
    opts = part_options(params["tier"], grid["dtype"])
    regional = min(t["levels"] for t in tiles)
    total = overview_levels(grid["width"], grid["height"])
    with tempfile.TemporaryDirectory(prefix="geoproc-stitch-") as tmp:
        parts = _local_parts(params["parts"], tmp, ctx)
        levels = [[stitch.Part(os.path.join(parts, posixpath.basename(level_url(t["url"], k))),
                               (t["origin"][0] >> k) // BLOCKSIZE, (t["origin"][1] >> k) // BLOCKSIZE) for t in tiles]
                  for k in range(regional + 1)]
        with rasterio.Env(GDAL_CACHEMAX=params["cache_bytes"]):
            levels += stitch.remaining_levels(levels[-1], tmp, levels=total - regional,
                                              resampling=params["overview_resampling"], grid=grid, options=opts)
        local = os.path.join(tmp, params["stem"] + ".tif")
        stitch.stitch_cog(levels, local, metadata=stitch.gdal_metadata(tags, grid.get("descriptions")))
        return large_raster_tasks.publish_single(local, params, ctx, lossless=True).model_dump(mode="json")


def _local_parts(url: str, tmp: str, ctx: TaskContext) -> str:
    """The directory of the COG's parts on this machine: in place, or downloaded from object storage."""
    if is_local(url):
        return local_path(url)
    dest = os.path.join(tmp, "parts")
    with storage_errors(url, "read"):
        fs, path = open_fs(url, ctx.storage_options)
        fs.get(path.rstrip("/") + "/", dest + "/", recursive=True)
    return dest


def publish_json(doc: JSON, url: str, ctx: TaskContext) -> None:
    """Write a JSON document atomically (a local temp file, then :func:`~geoproc.storage.publish`)."""
    with tempfile.TemporaryDirectory(prefix="geoproc-item-") as tmp:
        local = os.path.join(tmp, "item.json")
        with open(local, "w") as f:
            json.dump(doc, f, indent=1)
        publish(local, url, ctx.storage_options, move=True)


HANDLERS: dict[str, Callable[..., JSON]] = {"write.template": template, "write.region": region,
                                            "write.finalize": finalize}


def handlers_for_array(obj: xr.DataArray) -> dict[str, Callable[..., JSON]]:
    """The handlers of a write of ``obj``: the array travels with the tasks that compute it."""
    return {"write.template": functools.partial(template, obj=obj), "write.region": functools.partial(region, obj=obj),
            "write.finalize": finalize}


# --- what each stage's work lives on (checked before a finished write is trusted) -------------------------


def template_output(p: Any, result: JSON) -> list[WrittenFile]:
    """A Zarr template lives on its store; made again, it fingerprints the regions anew
    (:func:`~geoproc.raster.regions.template_id`), so they need no check of their own."""
    return [(rg.store_metadata(p.output), None, None)] if p.format == "zarr" else []


def region_output(p: Any, result: JSON) -> list[WrittenFile]:
    """What a region's work lives on: its tile (tiles), or its part until the assembly removes it, then
    the COG: when both are gone, the region runs again for a new assembly."""
    if p.format == "tiles":
        return [(result["url"], result.get("size"), result.get("sha256"))] if result.get("url") else []
    if p.format == "cog" and result.get("url"):
        return [((result["url"], p.output), None, None)]  # the part, or the COG
    return []


def final_output(p: Any, result: JSON) -> list[WrittenFile]:
    """The finished output: the COG (size and sha256 recorded), or the store's consolidated metadata."""
    if p.format == "cog":
        return [(p.output, result.get("size"), result.get("sha256"))] if result.get("sha256") else []
    return [(rg.store_metadata(p.output), result.get("metadata_size"), None)] if p.format == "zarr" else []


def count_regions(p: Params, results: Iterator[JSON]) -> JSON | None:
    return rg.merge_stats(results)


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    tmpl, final = values[0], values[2] or {}
    out = {"output": p.output, "format": p.format, "shape": (tmpl or {}).get("shape"), "dtype": p.dtype,
           "chunks": list(p.chunks), "band_stats": final.get("band_stats")}
    if p.format == "zarr":
        out["name"] = p.name
    else:
        out.update({k: final.get(k) for k in ("size", "sha256", "overviews", "bbox_wgs84", "mosaic", "footprints",
                                              "tiles") if k in final})
    if final.get("item"):
        out["item"] = final["item"]
    if len(values) > 3 and values[3]:  # the jobs that catalog their output (stac_stage.OUTPUT_STAGE)
        out["stac"] = values[3]
    return out


Write = JobType(
    name="write",
    description="Write a lazy xarray computation to Zarr, a COG or COG tiles, one task per region (from "
                "Python: geoproc.write).",
    params=Params,
    stages=(
        Stage("template", handler="write.template", plan=plan_template, aggregate=only_result,
              outputs=template_output, description="prepare the output (Zarr metadata; no foreign file in the way)"),
        Stage("regions", handler="write.region", plan=plan_regions, aggregate=count_regions, heavy=True,
              retry=RetryPolicy(attempts=3), outputs=region_output,
              description="compute and write each region of whole chunks"),
        Stage("finalize", handler="write.finalize", plan=plan_finalize, aggregate=only_result, heavy=True,
              outputs=final_output, description="consolidate the Zarr metadata, or assemble the COG / the tiles' VRT"),
    ),
    hash_exclude=frozenset({"overwrite", "gdal_threads"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)


# --- jobs whose array is built from their parameters (process, stack) -----------------------------------


def with_source(specs: Iterator[TaskSpec], source: JSON, token: str) -> Iterator[TaskSpec]:
    """The write's task specs, carrying what a worker needs to rebuild the array, fingerprinted by the
    array's content token (a changed input makes its regions run again instead of being skipped)."""
    for spec in specs:
        yield TaskSpec(key=spec.key, params={**spec.params, "source": source}, parent=spec.parent,
                       fingerprint=f"{token}:{spec.fingerprint}" if spec.fingerprint else token)


def derived_stages(prefix: str, planned: Callable[[Any], tuple[Params, JSON, Any]],
                   regional: Callable[[Any, JSON, JSON], JSON] | None = None) -> tuple[Stage, ...]:
    """The write job's stages for a job that describes its array by parameters.

    ``planned(params)`` gives the write's parameters, the ``source`` every task carries to rebuild the
    array on its worker, and the array (built once per run, in the driver). ``regional(params,
    task_params, source)``, when given, gives a region task its own source (a mosaic's inputs that reach
    the region). Template and regions run the ``{prefix}.template`` / ``{prefix}.region`` handlers,
    which rebuild the array from ``source``; the finalize is the write's own.
    """
    def plan_t(p: Any, previous: None) -> Iterator[TaskSpec]:
        wp, source, _ = planned(p)
        yield from with_source(plan_template(wp, None), source, wp.token)

    def plan_r(p: Any, previous: StageOutput) -> Iterator[TaskSpec]:
        wp, source, _ = planned(p)
        if regional is None:
            yield from with_source(plan_regions(wp, previous), source, wp.token)
            return
        for spec in plan_regions(wp, previous):
            yield from with_source(iter([spec]), regional(p, spec.params, source), wp.token)

    def plan_f(p: Any, previous: StageOutput) -> Iterator[TaskSpec]:
        wp, source, _ = planned(p)
        yield from with_source(plan_finalize(wp, previous), source, wp.token)

    tmpl, regions, final = Write.stages
    return (dataclasses.replace(tmpl, handler=f"{prefix}.template", plan=plan_t),
            dataclasses.replace(regions, handler=f"{prefix}.region", plan=plan_r),
            dataclasses.replace(final, plan=plan_f))


def derived_handlers(prefix: str, build: Callable[[JSON, dict | None], Any]) -> dict[str, Callable[..., JSON]]:
    """Template and region handlers that rebuild the array with ``build(source, storage_options)``."""
    def tmpl(params: JSON, ctx: TaskContext) -> JSON:
        zarr = params["format"] == "zarr"  # only a store's template is made from the array
        return template(params, ctx, obj=build(params["source"], ctx.storage_options) if zarr else None)

    def reg(params: JSON, ctx: TaskContext) -> JSON:
        return region(params, ctx, obj=build(params["source"], ctx.storage_options))

    return {f"{prefix}.template": tmpl, f"{prefix}.region": reg}
