"""The worker side of ``large_raster``: warp and write one tile; assemble the tiles into the outputs.

The handlers take the plain params :mod:`geoproc.jobs.large_raster` planned and return typed results:
:class:`TileResult` for a tile, :class:`AssemblyResult` for the assembly of the outputs (the
``finalize`` stage). Memory stays bounded: a tile task holds its tile and a ``GDAL_CACHEMAX`` of
:data:`~geoproc.raster.tiling.GDAL_CACHE`; the assembly streams the parts through a VRT.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio

from ..bbox import union
from ..model import JSON, NodataJSON, ResultWarning, TaskContext, TaskResult
from ..raster import footprint
from ..raster.assemble import assemble_cog
from ..raster.checks import check_cog
from ..raster.io import open_raster
from ..raster.profiles import cog_options
from ..raster.stats import BandStats, assembled_stats
from ..raster.tiling import GDAL_CACHE
from ..raster.vrt import build_vrt, placement
from ..raster.warp import warp_tile
from ..raster.writers import write_cog, write_part
from ..storage import gdal_env, gdal_path, join, publish, redact, remove_tree, sha256_file


class CogFacts(TaskResult):
    """What a check of a written COG reports (``raster.checks.check_cog``), shared by tiles and assembly."""

    crs: str | None = None
    bounds: list[float] | None = None
    shape: list[int] | None = None
    transform: list[float] | None = None
    count: int | None = None
    dtype: str | None = None
    nodata: NodataJSON = None
    compression: str | None = None
    blocksize: list[int] | None = None
    colorinterp: list[str] | None = None
    has_mask: bool | None = None


class TileResult(CogFacts):
    """One tile task's result. An empty tile (``mode=tiles``, all nodata) has only its place and
    ``empty``; a tile COG (``mode=tiles``) has the facts of its check; a part of the single output
    (``mode=single``) has its footprint read back from the file and the counts of its statistics."""

    key: str
    row: int
    col: int
    grid: JSON  # the output grid (crs_wkt, transform, width, height, count, dtype, nodata, colorinterp)
    empty: bool = False
    bbox_wgs84: list[float] | None = None
    provenance: str | None = None
    overviews: list[int] | None = None
    band_stats: list[JSON] | None = None
    warnings: list[ResultWarning] = []
    stats: JSON | None = None  # BandStats counts of the tile's own pixels (mode=single)
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    inner: list[int] | None = None  # the tile's own pixels within the file: col, row, width, height


class AssemblyResult(CogFacts):
    """The ``finalize`` task's result: the single COG's facts, or the tiles' mosaic and footprints."""

    overviews: list[int] | None = None
    band_stats: list[JSON] | None = None
    warnings: list[ResultWarning] = []
    bbox_wgs84: list[float] | None = None
    mode: str
    output: str | None = None
    size: int | None = None
    sha256: str | None = None
    tiles: int
    items: list[JSON] | None = None  # mode=tiles: one entry per tile COG
    mosaic: str | None = None
    footprints: str | None = None


# --- tiles -------------------------------------------------------------------------------------------


def tile(params: JSON, ctx: TaskContext) -> JSON:
    """Warp one tile and write it (a checked COG, or a part of the single output)."""
    x, y, w, h = params["outer"]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE):  # reading, writing and checking: a bounded cache
        with open_raster(params["input"], ctx.storage_options) as src:
            arr = warp_tile(src, bands=params["bands"], src_window=tuple(params["src_window"]) or None,
                            dst_crs=params["crs"], dst_transform=params["transform"], dst_shape=(h, w),
                            resampling=params["resampling"], dst_nodata=params["nodata"],
                            tolerance=params["tolerance"], threads=params.get("threads", 1))
        return _write_tile(arr, params, ctx).model_dump(mode="json")


def _write_tile(arr: Any, params: JSON, ctx: TaskContext) -> TileResult:
    x, y = params["outer"][:2]
    nodata = params["nodata"]
    base = {"key": ctx.key, "row": params["row"], "col": params["col"], "grid": params["grid"]}
    if params["mode"] == "tiles" and nodata is not None and _all_nodata(arr, nodata):
        return TileResult(**base, empty=True)
    inner = [params["window"][0] - x, params["window"][1] - y, params["window"][2], params["window"][3]]
    with tempfile.TemporaryDirectory(prefix="geoproc-tile-") as tmp:
        local = os.path.join(tmp, f"{ctx.key}.tif")
        if params["mode"] == "tiles":
            opts = cog_options(params["tier"], str(arr.dtype), overview_resampling=params["overview_resampling"],
                               raster_type=params["raster_type"])
            write_cog(arr, local, crs=params["crs"], transform=params["transform"], nodata=nodata, options=opts)
            del arr
            facts = TileResult.fields_of(check_cog(local))
            facts["bbox_wgs84"] = footprint.bbox_wgs84(params["crs"], tuple(facts["bounds"]))
        else:
            write_part(arr, local, crs=params["crs"], transform=params["transform"], nodata=nodata)
            counted = BandStats(arr.shape[0], str(arr.dtype), nodata)  # this tile's share of the COG's statistics
            ix, iy, iw, ih = inner
            counted.add(arr[:, iy:iy + ih, ix:ix + iw])
            del arr
            facts = {**TileResult.fields_of(footprint.measured(local)), "stats": counted.to_json()}
        size, digest = os.path.getsize(local), sha256_file(local)
        publish(local, params["dest"], ctx.storage_options, move=True)
    return TileResult(**base, **facts, url=redact(params["dest"]), size=size, sha256=digest, inner=inner)


def _all_nodata(arr: Any, nodata: float) -> bool:
    if isinstance(nodata, float) and np.isnan(nodata):
        return bool(np.isnan(arr).all())
    return bool((arr == nodata).all())


# --- assembly (the ``finalize`` stage) -----------------------------------------------------------------


def assemble(params: JSON, ctx: TaskContext) -> JSON:
    """Assemble the outputs: the single COG from its parts, or the VRT mosaic of the tile COGs."""
    if params["mode"] == "single":
        return _assemble_single(params, ctx).model_dump(mode="json")
    return _assemble_tiles(params, ctx).model_dump(mode="json")


def _sources(params: JSON, path_of: Callable[[str], str]) -> list:
    grid = params["grid"]
    out = []
    for t in sorted(params["tiles"], key=lambda t: (t["row"], t["col"])):
        src_rect, dst_rect = placement(grid["transform"], t["transform"], tuple(t["shape"]), tuple(t["inner"]))
        out.append((path_of(t["url"]), src_rect, dst_rect))
    return out


def _assemble_single(params: JSON, ctx: TaskContext) -> AssemblyResult:
    """The single COG: overviews level by level from the parts' mosaic, then a streaming COG copy."""
    grid = params["grid"]
    opts = cog_options(params["tier"], grid["dtype"], overview_resampling=params["overview_resampling"],
                       raster_type=params["raster_type"], threads=params["gdal_threads"])
    nodata = grid.get("nodata")
    vrt = {"crs_wkt": grid["crs_wkt"], "transform": grid["transform"], "width": grid["width"],
           "height": grid["height"], "count": grid["count"], "dtype": grid["dtype"], "nodata": nodata,
           "colorinterp": grid.get("colorinterp"), "sources": _sources(params, gdal_path),
           "tags": params.get("tags"), "descriptions": grid.get("descriptions")}
    with tempfile.TemporaryDirectory(prefix="geoproc-mosaic-") as tmp:
        mosaic = os.path.join(tmp, "mosaic.vrt")
        build_vrt(mosaic, **vrt)
        local = os.path.join(tmp, params["stem"] + ".tif")
        assemble_cog(mosaic, local, opts, overview_resampling=params["overview_resampling"], nodata=nodata,
                     cache_bytes=params["cache_bytes"], vrt=vrt,
                     gdal_config=gdal_env(params["parts"], ctx.storage_options))
        return publish_single(local, params, ctx, lossless=opts.get("COMPRESS") != "JPEG")


def publish_single(local: str, params: JSON, ctx: TaskContext, *, lossless: bool) -> AssemblyResult:
    """Check the single COG assembled at ``local`` (its band statistics from the counts its tiles merged),
    publish it to ``params["output"]`` and remove its parts; the assembly's result."""
    grid = params["grid"]
    facts = AssemblyResult.fields_of(check_cog(local, cache_bytes=params["cache_bytes"],
                                               stats=_merged_stats(params, lossless)))
    facts["bbox_wgs84"] = footprint.bbox_wgs84(grid["crs_wkt"], tuple(facts["bounds"]))
    size, digest = os.path.getsize(local), sha256_file(local)
    publish(local, params["output"], ctx.storage_options, move=True)
    remove_tree(params["parts"], ctx.storage_options)
    return AssemblyResult(**facts, mode="single", output=redact(params["output"]), size=size, sha256=digest,
                          tiles=len(params["tiles"]))


def _merged_stats(params: JSON, lossless: bool) -> list[JSON] | None:
    """The single COG's band statistics from the counts its tiles merged, or None to measure the file."""
    grid, counted = params["grid"], params.get("stats")
    if not counted:
        return None
    return assembled_stats(BandStats.from_json(counted["counts"]), covered=counted["covered"],
                           width=grid["width"], height=grid["height"], lossless=lossless)


def _assemble_tiles(params: JSON, ctx: TaskContext) -> AssemblyResult:
    """The VRT mosaic of the tile COGs (relative paths) and the GeoJSON of their footprints."""
    grid, stem = params["grid"] or {}, params["stem"]
    items = []
    feats = []
    for t in params["tiles"]:
        items.append({"id": f"{stem}_{t['key']}", "href": t["url"], "bbox": t["bbox_wgs84"], "bounds": t["bounds"],
                      "transform": t["transform"], "shape": t["shape"], "size": t["size"], "sha256": t["sha256"]})
        feats.append({"type": "Feature", "id": t["key"], "properties": {"key": t["key"], "href": t["url"]},
                      "geometry": footprint.polygon_wgs84(grid["crs_wkt"], tuple(t["bounds"]))})
    vrt_url, geojson_url = join(params["output"], f"{stem}.vrt"), join(params["output"], f"{stem}_tiles.geojson")
    result = AssemblyResult(mode="tiles", tiles=len(items), items=items, mosaic=redact(vrt_url),
                            footprints=redact(geojson_url))
    if not items:
        return result
    with tempfile.TemporaryDirectory(prefix="geoproc-vrt-") as tmp:
        vrt = os.path.join(tmp, f"{stem}.vrt")
        build_vrt(vrt, crs_wkt=grid["crs_wkt"], transform=grid["transform"], width=grid["width"],
                  height=grid["height"], count=grid["count"], dtype=grid["dtype"], nodata=grid.get("nodata"),
                  sources=_sources(params, posixpath.basename), relative=True, descriptions=grid.get("descriptions"))
        publish(vrt, vrt_url, ctx.storage_options)
        gj = os.path.join(tmp, "tiles.geojson")
        with open(gj, "w") as f:
            json.dump({"type": "FeatureCollection", "features": feats}, f)
        publish(gj, geojson_url, ctx.storage_options)
    result.bbox_wgs84 = union(i["bbox"] for i in items)
    return result


HANDLERS = {"large_raster.tile": tile, "large_raster.finalize": assemble}
