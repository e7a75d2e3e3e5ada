"""Assembling one COG in bounded memory: from tiles warped one by one, or from the parts of a tiled job.

* :func:`tiled_cog` is the one-task form of the ``large_raster`` job (the cog job's ``tiled`` route):
  each tile of a :class:`~geoproc.raster.tiling.TilingPlan` is warped from its source window and
  written straight into a tiled GeoTIFF of the whole grid, then :func:`assemble_cog` runs.
* :func:`assemble_cog` writes the COG from a full-resolution mosaic (a VRT of the parts of a tiled
  job's ``single`` output, or that whole-grid GeoTIFF):

  1. the mosaic is a VRT of the parts (no pixel is copied) or the grid file itself;
  2. the overviews are computed level by level, each from the previous level, one 512 x 512 output
     window at a time (:func:`~geoproc.raster.overviews.build_overview_levels`); each level is a
     plain tiled GeoTIFF;
  3. a VRT that lists those files as the mosaic's overviews is copied by GDAL's COG driver with
     ``OVERVIEWS=FORCE_USE_EXISTING``: a streaming block copy that computes nothing, under a bounded
     ``GDAL_CACHEMAX``.

Memory is one window plus GDAL's bounded block cache, whatever the raster size. The result is then
checked like every COG (:func:`geoproc.raster.checks.check_cog`) before it is published.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from .heap import release_memory
from .overviews import build_overview_levels, overview_levels
from .stats import BandStats, assembled_stats
from .tiling import SourceInfo, TilingPlan
from .vrt import build_vrt
from .warp import warp_tile
from .writers import write_grid

log = logging.getLogger(__name__)

POOL_SIZE = 8  # parts a mosaic VRT keeps open (each holds a few MiB of decoder state)


def tiled_cog(src: Any, out_path: str, *, target_crs: str, options: dict[str, str], overview_resampling: str,
              reproject_resampling: str, tags: dict[str, str] | None = None, memory_budget: int = 256 * 2**20,
              cache_bytes: int = 32 * 2**20) -> dict[str, Any]:
    """Reproject an open raster to a COG at local ``out_path`` window by window, in bounded memory.

    The one-task form of the ``large_raster`` job: a :class:`~geoproc.raster.tiling.TilingPlan` cuts
    the output grid into tiles that fit ``memory_budget``; each tile is warped from its source window
    and written straight into a tiled GeoTIFF of the whole grid (block-aligned, nothing held), then
    :func:`assemble_cog` builds the overviews and the COG. Memory does not grow with the raster.

    The tiles' pixels are counted as they are written, so ``band_stats`` (see
    :func:`~geoproc.raster.stats.assembled_stats`) spares the check a decoding pass over the COG.

    Returns:
        ``{"tiles": n, "tile_size": px, "overviews": [...], "band_stats": [...] or None}``
    """
    plan = TilingPlan.build(SourceInfo.from_dataset(src, src.name), target_crs, memory_budget=memory_budget,
                            resampling=reproject_resampling)
    grid = os.path.join(os.path.dirname(os.path.abspath(out_path)), ".geoproc-grid.tif")
    counted = BandStats(len(plan.bands), plan.dtype, plan.nodata)
    covered = 0
    try:
        with rasterio.Env(GDAL_CACHEMAX=cache_bytes):
            with write_grid(grid, crs=target_crs, transform=plan.transform, width=plan.width, height=plan.height,
                            count=len(plan.bands), dtype=plan.dtype, nodata=plan.nodata) as dst:
                for t in plan.tiles():  # tiles that see no source stay unwritten: sparse blocks read as nodata
                    x, y, w, h = t.outer
                    arr = warp_tile(src, bands=plan.bands, src_window=t.src_window, dst_crs=target_crs,
                                    dst_transform=t.transform, dst_shape=(h, w), resampling=plan.resampling,
                                    dst_nodata=plan.nodata)
                    dst.write(arr, window=Window(x, y, w, h))
                    counted.add(arr)
                    covered += w * h
                    del arr
                if tags:
                    dst.update_tags(**tags)
                if plan.colorinterp:
                    dst.colorinterp = [ColorInterp[c.lower()] for c in plan.colorinterp]
            release_memory()
            done = assemble_cog(grid, out_path, options, overview_resampling=overview_resampling,
                                nodata=plan.nodata, cache_bytes=cache_bytes)
    finally:
        if os.path.exists(grid):
            os.remove(grid)
    stats = assembled_stats(counted, covered=covered, width=plan.width, height=plan.height,
                            lossless=options.get("COMPRESS") != "JPEG")
    return {"tiles": len(plan.tiles()), "tile_size": plan.tile_size, **done, "band_stats": stats}


def assemble_cog(mosaic: str, out_path: str, options: dict[str, str], *, overview_resampling: str,
                 nodata: float | None, cache_bytes: int = 32 * 2**20, vrt: dict[str, Any] | None = None,
                 gdal_config: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the COG at local ``out_path`` from the full-resolution ``mosaic`` in bounded memory.

    ``mosaic`` is a VRT of the parts or a tiled GeoTIFF of the whole grid. The overview levels are
    computed next to ``out_path`` (:func:`~geoproc.raster.overviews.build_overview_levels`), then
    GDAL's COG driver copies a VRT that names them as the mosaic's overviews
    (``OVERVIEWS=FORCE_USE_EXISTING``: nothing is recomputed) block by block; its block cache is
    bounded by ``cache_bytes``.

    Args:
        mosaic: full-resolution source (local path).
        out_path: local COG path; temporary files go next to it and are removed.
        options: COG driver creation options (:func:`~geoproc.raster.profiles.cog_options`).
        overview_resampling: GDAL kernel of the overviews.
        nodata: nodata of the output.
        cache_bytes: GDAL block cache while assembling.
        vrt: keyword arguments of :func:`~geoproc.raster.vrt.build_vrt` describing ``mosaic`` (grid, sources, tags,
            colour interpretation); None reads them from ``mosaic`` itself.
        gdal_config: more GDAL configuration options (credentials of the parts).

    Returns:
        ``{"overviews": [2, 4, ...]}``
    """
    work = os.path.join(os.path.dirname(os.path.abspath(out_path)), ".geoproc-assemble")
    os.makedirs(work, exist_ok=True)
    try:
        with rasterio.Env(GDAL_CACHEMAX=int(cache_bytes), CPL_TMPDIR=work, VRT_NUM_THREADS=1,
                          GDAL_MAX_DATASET_POOL_SIZE=POOL_SIZE, **(gdal_config or {})):
            if vrt is None:
                with rasterio.open(mosaic) as ds:
                    vrt = {"crs_wkt": ds.crs.to_wkt() if ds.crs else "", "transform": list(ds.transform)[:6],
                           "width": ds.width, "height": ds.height, "count": ds.count, "dtype": ds.dtypes[0],
                           "nodata": ds.nodata, "tags": ds.tags(),
                           "colorinterp": [c.name.capitalize() for c in ds.colorinterp],
                           "sources": [(mosaic, (0, 0, ds.width, ds.height), (0, 0, ds.width, ds.height))]}
            levels = overview_levels(vrt["width"], vrt["height"])
            ovrs = build_overview_levels(mosaic, work, levels=levels, resampling=overview_resampling, nodata=nodata)
            release_memory()
            full = os.path.join(work, "cog-source.vrt")
            build_vrt(full, **{**vrt, "overviews": ovrs})
            opts = {k: v for k, v in options.items() if k != "OVERVIEW_RESAMPLING"}
            rasterio.shutil.copy(full, out_path, driver="COG", OVERVIEWS="FORCE_USE_EXISTING",
                                 OVERVIEW_RESAMPLING=overview_resampling.upper(), **opts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        release_memory()
    return {"overviews": [2**k for k in range(1, levels + 1)]}
