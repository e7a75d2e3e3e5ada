"""COG creation with rio-cogeo, and the checks every output passes before anyone may see it.

:func:`translate` writes a COG to a *local* path: rio-cogeo's ``cog_translate`` does the work (no
hand-written TIFF logic), reading the source through a ``WarpedVRT`` when it must be reprojected or
given a CRS. :func:`describe` then checks the local file and measures what a STAC item needs:

* ``cog_validate`` must pass (errors fail the task, warnings are reported);
* overviews, when the raster is larger than one block, must exist and hold data: the smallest level
  is read and compared with the full-resolution statistics (a COG written with empty overviews, as
  some Dask writers produce, is caught here);
* exact per-band statistics are computed block by block; the file's sha256 and size are taken.

Only then does the caller publish the file (:func:`geoproc.storage.publish`).

Rasters without nodata that are reprojected get an internal mask, so the area outside the source
footprint is not mistaken for data. Overviews halve the raster until its long side fits in one 512 x 512
block, so a raster that already fits gets none.

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

import ctypes
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from ..errors import OutputCheckFailed
from .detect import nodata_json
from .profiles import BLOCKSIZE
from .stats import band_stats, raw_band_stats
from .validate import crs_string, is_georeferenced

PROVENANCE_TAG = "GEOPROC_PROVENANCE"
CACHE_BYTES = 256 << 20  # GDAL block cache while converting and checking (rasterio takes bytes)
_DATETIME_TAGS = ("TIFFTAG_DATETIME", "ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATETIME", "DATE_TIME")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_LIBC: ctypes.CDLL | None | bool = False


def _libc() -> ctypes.CDLL | None:
    global _LIBC
    if _LIBC is False:
        try:
            lib = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
            _LIBC = lib if lib is not None and hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None
        except OSError:
            _LIBC = None
    return _LIBC  # type: ignore[return-value]


@contextmanager
def heap_for_gdal(mmap_threshold: int = 32 << 20) -> Iterator[None]:
    """Let glibc reuse freed heap memory for GDAL's large block buffers while converting.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also pins glibc's mmap
    threshold at 128 KiB: every tile buffer GDAL allocates is then a fresh ``mmap`` that the kernel
    zero-fills (a 6000 x 6000 x 3 conversion took about a quarter more CPU time, most of it system
    time, than in a plain process). Inside this block buffers below ``mmap_threshold`` come from the
    heap again; afterwards the worker's settings are restored and the freed memory is given back to
    the OS (``malloc_trim``). The setting is process-wide. A no-op off glibc or outside such workers.
    """
    libc = _libc() if os.environ.get("MALLOC_TRIM_THRESHOLD_") is not None else None
    if libc is None:
        yield
        return
    trim = int(os.environ.get("MALLOC_TRIM_THRESHOLD_") or 128 * 1024)
    libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    libc.mallopt(_M_TRIM_THRESHOLD, max(trim, 2 * mmap_threshold))
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, trim)
        libc.malloc_trim(0)


def needs_warp(src_crs: CRS | None, target_crs: str) -> bool:
    """Whether the output must be reprojected (``keep`` and an equal CRS do not)."""
    if target_crs == "keep" or src_crs is None:
        return False
    return CRS.from_user_input(target_crs) != src_crs


def overview_levels(width: int, height: int, blocksize: int = BLOCKSIZE) -> int:
    """Number of 2x overview levels until the long side fits in one block (0 for one-block rasters)."""
    n = 0
    while max(width, height) / 2**n > blocksize:
        n += 1
    return n


def translate(src: rasterio.DatasetReader, dst_path: str, profile: dict, *, crs: CRS | None, crs_given: bool,
              target_crs: str, overview_resampling: str, reproject_resampling: str, provenance: str,
              gdal_config: dict | None = None) -> dict[str, Any]:
    """Write ``src`` as a COG at the local ``dst_path``; returns what was done (reprojected, masked).

    The returned ``band_stats`` are the output's statistics when the conversion could measure them on
    the way (the direct route), else None: :func:`describe` then measures the output itself.

    ``crs`` is the effective source CRS; ``crs_given`` says it came from the job (``input_crs``) rather
    than the file, in which case it is assigned without resampling.
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
        if source is src and _direct_ok(src, profile):
            with rasterio.Env(**config):
                stats = _direct(src, dst_path, profile, levels, overview_resampling, provenance)
        else:
            cog_translate(source, dst_path, profile, overview_resampling=overview_resampling, resampling="nearest",
                          add_mask=add_mask, overview_level=levels, quiet=True, forward_band_tags=True,
                          additional_cog_metadata={PROVENANCE_TAG: provenance}, config=config)
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
            provenance: str) -> list[dict[str, Any]]:
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
            mid.update_tags(OVERVIEW_RESAMPLING=Resampling[overview_resampling].name.upper(),
                            **{PROVENANCE_TAG: provenance})
        rasterio.shutil.copy(tmp, dst_path, copy_src_overviews=True, **profile)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(tmp) as mid:
            return raw_band_stats(mid)
    finally:
        for leftover in (tmp, tmp + ".aux.xml", tmp + ".msk"):
            if os.path.exists(leftover):
                os.remove(leftover)


def source_datetime(tags: dict[str, str]) -> str | None:
    """An ISO 8601 UTC timestamp from the file's date tags (``TIFFTAG_DATETIME`` etc.), or None.

    TIFF dates have no time zone; they are read as UTC.
    """
    for key in _DATETIME_TAGS:
        value = tags.get(key)
        if not value:
            continue
        value = value.strip()
        for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
            try:
                return datetime.strptime(value, fmt).strftime("%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                continue
    return None


def check_overviews(path: str, stats: list[dict[str, Any]]) -> list[int]:
    """The decimation factors; raises when overviews are missing or do not hold the data.

    Raises:
        OutputCheckFailed: a raster larger than one block has no overviews, or its smallest overview
            is empty (or far off the full-resolution statistics) while the data is not.
    """
    with rasterio.open(path) as ds:
        factors = ds.overviews(1)
        if not factors:
            if max(ds.width, ds.height) > BLOCKSIZE:
                raise OutputCheckFailed(f"{ds.width}x{ds.height} COG was written without overviews.")
            return []
    with rasterio.open(path, overview_level=len(factors) - 1) as ov:
        data = ov.read(masked=True)
    for b, st in enumerate(stats):
        if not st["valid_percent"]:
            continue
        v = data[b].compressed()
        if v.dtype.kind == "f":
            v = v[np.isfinite(v)]
        if v.size == 0:
            raise OutputCheckFailed(f"band {b + 1}: the smallest overview (1/{factors[-1]}) holds no valid pixel.")
        spread = float(st["maximum"]) - float(st["minimum"])
        if abs(float(v.mean()) - st["mean"]) > 0.25 * spread + 1e-6 * max(1.0, abs(st["mean"])):
            raise OutputCheckFailed(f"band {b + 1}: the smallest overview (1/{factors[-1]}) has mean {float(v.mean()):g}, "
                                    f"the data {st['mean']:g}; the overviews do not match the data.")
    return factors


def validate_cog(path: str) -> list[str]:
    """rio-cogeo's validator; returns its warnings and raises on errors."""
    from rio_cogeo.cogeo import cog_validate

    ok, errors, warnings = cog_validate(path, quiet=True)
    if not ok or errors:
        raise OutputCheckFailed(f"the output is not a valid COG: {'; '.join(errors) or 'rejected by cog_validate'}")
    return [f"COG_VALIDATE: {w}" for w in warnings]


def describe(path: str, *, threads: int = 2, stats: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Check the local COG at ``path`` and return its facts (everything but URLs and checksums).

    ``stats`` are the output's band statistics when the conversion measured them already
    (:func:`translate`); otherwise ``threads`` GDAL threads decode the blocks of a statistics pass.

    Raises:
        OutputCheckFailed: the file is not a valid COG or its overviews are empty.
    """
    warnings = validate_cog(path)
    with heap_for_gdal(), rasterio.Env(GDAL_CACHEMAX=CACHE_BYTES, GDAL_NUM_THREADS=str(threads)), rasterio.open(path) as ds:
        if stats is None:
            stats = band_stats(ds)
        crs = ds.crs
        bounds = list(ds.bounds)
        bbox = None
        if crs is not None and is_georeferenced(crs):
            bbox = list(transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21))
        facts = {
            "crs": crs_string(crs),
            "bounds": bounds,
            "bbox_wgs84": bbox,
            "shape": [ds.height, ds.width],
            "transform": list(ds.transform)[:6],
            "count": ds.count,
            "dtype": ds.dtypes[0],
            "nodata": nodata_json(ds.nodata),
            "compression": (ds.compression.name.lower() if ds.compression else "none"),
            "blocksize": list(ds.block_shapes[0]),
            "colorinterp": [c.name for c in ds.colorinterp],
            "has_mask": any(MaskFlags.per_dataset in f for f in ds.mask_flag_enums),
            "provenance": ds.tags().get(PROVENANCE_TAG),
            "tags": ds.tags(),
        }
    facts["overviews"] = check_overviews(path, stats)
    facts["band_stats"] = stats
    facts["warnings"] = warnings
    return facts


def read_provenance(ds: rasterio.DatasetReader) -> str | None:
    """The provenance digest geoproc stamped into a COG it wrote (None for other files)."""
    return ds.tags().get(PROVENANCE_TAG)
