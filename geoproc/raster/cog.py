"""COG creation with rio-cogeo: :func:`translate` writes a COG to a *local* path.

rio-cogeo's ``cog_translate`` does the work (no hand-written TIFF logic), reading the source through
a ``WarpedVRT`` when it must be reprojected or given a CRS. The caller then checks the file
(:func:`geoproc.raster.checks.check_cog`) and only then publishes it (:func:`geoproc.storage.publish`).

Rasters without nodata that are reprojected get an internal mask, so the area outside the source
footprint is not mistaken for data. Overviews halve the raster until its long side fits in one 512 x 512
block (:func:`geoproc.raster.overviews.overview_levels`), so a raster that already fits gets none.

Speed: a raster that keeps its grid (no reprojection, no CRS assignment) and is not written as JPEG
takes rio-cogeo's method without its per-window Python copy through a ``WarpedVRT``: GDAL copies the
source into an uncompressed tiled intermediate next to the output, builds the overviews in it, and
copies it (``COPY_SRC_OVERVIEWS``) with the tier's creation options, compressing on ``GDAL_NUM_THREADS``
threads. The statistics are then taken from the uncompressed intermediate, which holds the output's
pixels (every tier this route takes is lossless), so the output is not decoded a second time just to
measure it. The other cases go through ``cog_translate``. Both run with a bounded GDAL block cache
(:data:`CACHE_BYTES`), so a large raster does not fill a worker with cached blocks.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import ExitStack
from typing import Any

import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.vrt import WarpedVRT

from .heap import heap_for_gdal
from .overviews import overview_levels
from .stats import raw_band_stats

log = logging.getLogger(__name__)

PROVENANCE_TAG = "GEOPROC_PROVENANCE"  # the digest geoproc stamps into every COG it writes
REVISION_TAG = "GEOPROC_REVISION"  # 1, then one more each time geoproc replaces the COG in place
CACHE_BYTES = 256 << 20  # GDAL block cache while converting and checking (rasterio takes bytes)


def needs_warp(src_crs: CRS | None, target_crs: str) -> bool:
    """Whether the output must be reprojected (``keep`` and an equal CRS do not)."""
    if target_crs == "keep" or src_crs is None:
        return False
    return CRS.from_user_input(target_crs) != src_crs


def translate(src: rasterio.DatasetReader, dst_path: str, profile: dict, *, crs: CRS | None, crs_given: bool,
              target_crs: str, overview_resampling: str, reproject_resampling: str, provenance: str,
              revision: int = 1, gdal_config: dict | None = None) -> dict[str, Any]:
    """Write ``src`` as a COG at the local ``dst_path``; returns what was done (reprojected, masked).

    The returned ``band_stats`` are the output's statistics when the conversion could measure them on
    the way (the direct route), else None: :func:`~geoproc.raster.checks.check_cog` then measures
    the output itself.

    ``crs`` is the effective source CRS; ``crs_given`` says it came from the job (``input_crs``) rather
    than the file, in which case it is assigned without resampling. ``provenance`` and ``revision`` are
    stamped into the file's tags (:data:`PROVENANCE_TAG`, :data:`REVISION_TAG`).
    """
    from rio_cogeo.cogeo import cog_translate

    warp = needs_warp(crs, target_crs)
    add_mask = False
    stats = None
    with ExitStack() as stack:
        stack.enter_context(heap_for_gdal())
        source: Any = src
        if warp:
            kw: dict[str, Any] = {"crs": CRS.from_user_input(target_crs),
                                  "resampling": Resampling[reproject_resampling]}
            if crs_given:
                kw["src_crs"] = crs
            has_alpha = ColorInterp.alpha in src.colorinterp
            has_mask = any(MaskFlags.per_dataset in flags for flags in src.mask_flag_enums)
            if src.nodata is None and not has_alpha:
                kw["add_alpha"] = True  # becomes an internal mask: the warp's empty margins are not data
                add_mask = True
            elif has_mask:
                add_mask = True
            source = stack.enter_context(WarpedVRT(src, **kw))
        elif crs_given:
            # Assign the CRS: same grid, nearest neighbour, so every pixel is copied unchanged.
            source = stack.enter_context(WarpedVRT(src, src_crs=crs, crs=crs, transform=src.transform,
                                                   width=src.width, height=src.height,
                                                   resampling=Resampling.nearest))
        config = {"GDAL_CACHEMAX": CACHE_BYTES, **(gdal_config or {})}
        levels = overview_levels(source.width, source.height)
        stamp = {PROVENANCE_TAG: provenance, REVISION_TAG: str(revision)}
        if source is src and _direct_ok(src, profile):
            with rasterio.Env(**config):
                stats = _direct(src, dst_path, profile, levels, overview_resampling, stamp)
        else:
            cog_translate(source, dst_path, profile, overview_resampling=overview_resampling, resampling="nearest",
                          add_mask=add_mask, overview_level=levels, quiet=True, forward_band_tags=True,
                          additional_cog_metadata=stamp, config=config)
    return {"reprojected": warp, "masked": add_mask, "band_stats": stats}


def _direct_ok(src: rasterio.DatasetReader, profile: dict) -> bool:
    """Whether ``src`` can be copied as is by :func:`_direct` (what ``cog_translate`` would change is absent)."""
    if str(profile.get("compress", "")).upper() == "JPEG":
        return False  # rio-cogeo turns nodata/alpha into a mask for JPEG
    if src.gcps[0] or len(set(src.dtypes)) != 1:
        return False
    has_mask = any(MaskFlags.per_dataset in flags for flags in src.mask_flag_enums)
    has_alpha = ColorInterp.alpha in src.colorinterp
    return not (src.nodata is not None and (has_mask or has_alpha))


def _direct(src: rasterio.DatasetReader, dst_path: str, profile: dict, levels: int, overview_resampling: str,
            stamp: dict[str, str]) -> list[dict[str, Any]]:
    """rio-cogeo's method done by GDAL alone: tiled intermediate → overviews → ``COPY_SRC_OVERVIEWS``.

    Returns the band statistics, measured on the uncompressed intermediate after the copy.
    """
    block = {k: profile[k] for k in ("blockxsize", "blockysize", "interleave") if k in profile}
    tmp = os.path.join(os.path.dirname(os.path.abspath(dst_path)), f".geoproc-{uuid.uuid4().hex}.tif")
    try:
        rasterio.shutil.copy(src, tmp, driver="GTiff", tiled=True, compress="NONE", bigtiff="IF_SAFER", **block)
        with rasterio.open(tmp, "r+") as mid:
            if levels:
                mid.build_overviews([2**j for j in range(1, levels + 1)], Resampling[overview_resampling])
            mid.update_tags(OVERVIEW_RESAMPLING=Resampling[overview_resampling].name.upper(), **stamp)
        rasterio.shutil.copy(tmp, dst_path, copy_src_overviews=True, **profile)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(tmp) as mid:
            return raw_band_stats(mid)
    finally:
        for leftover in (tmp, tmp + ".aux.xml", tmp + ".msk"):
            if os.path.exists(leftover):
                os.remove(leftover)


def read_provenance(ds: rasterio.DatasetReader) -> str | None:
    """The provenance digest geoproc stamped into a COG it wrote (None for other files)."""
    return ds.tags().get(PROVENANCE_TAG)


def read_revision(ds: rasterio.DatasetReader) -> int:
    """The revision geoproc stamped into a COG it wrote (0 for other files and older COGs)."""
    try:
        return int(ds.tags().get(REVISION_TAG, 0))
    except ValueError:
        return 0
