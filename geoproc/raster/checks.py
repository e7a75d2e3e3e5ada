"""The checks every COG passes before anyone may see it, and the facts a task result and a STAC item need.

:func:`check_cog` checks a local file and measures it:

* ``cog_validate`` must pass (errors fail the task, warnings are reported as
  :class:`~geoproc.errors.TaskWarning`);
* overviews, when the raster is larger than one block, must exist and hold data: the smallest level
  is read and compared with the full-resolution statistics (a COG written with empty overviews, as
  some Dask writers produce, is caught here);
* exact per-band statistics are computed, unless the caller counted them already.

Only then does the caller publish the file (:func:`geoproc.storage.publish`).
"""

from __future__ import annotations

import logging
import re
from contextlib import ExitStack
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.warp import transform_bounds

from ..errors import COG_VALIDATE, OutputCheckFailed, TaskWarning
from .cog import PROVENANCE_TAG
from .crs import crs_string, is_georeferenced
from .detect import nodata_json
from .heap import heap_for_gdal
from .profiles import BLOCKSIZE
from .stats import band_stats, block_windows

log = logging.getLogger(__name__)

CHECK_CACHE_BYTES = 32 * 2**20  # GDAL block cache of a check in bounded memory
STATS_BYTES = 2 * 2**20  # bytes of pixels (all bands) one statistics window holds

_NARROW = re.compile(r"Overview of index (\d+) is not tiled")


def validate_cog(path: str) -> list[TaskWarning]:
    """rio-cogeo's validator; returns its warnings and raises on errors.

    rio-cogeo's validator calls an overview "not tiled" when its block is exactly as wide as the
    overview (an overview 512 pixels wide and taller than 512, which GDAL's COG driver writes in
    512 x 512 tiles). When that is the only error and every flagged overview really has 512 x 512
    blocks, the file is accepted with one warning saying so; every other check still applies.

    Raises:
        OutputCheckFailed: the file is not a valid COG.
    """
    from rio_cogeo.cogeo import cog_validate

    ok, errors, warnings = cog_validate(path, quiet=True)
    if ok and not errors:
        return [TaskWarning(COG_VALIDATE, w) for w in warnings]
    if errors and _only_narrow_overviews(path, errors):
        return [TaskWarning(COG_VALIDATE, "a 512-pixel-wide overview is tiled 512x512 (rio-cogeo reports it as untiled)")]
    raise OutputCheckFailed(f"the output is not a valid COG: {'; '.join(errors) or 'rejected by cog_validate'}")


def _only_narrow_overviews(path: str, errors: list[str]) -> bool:
    """Whether every error is the "not tiled" report of an overview that has 512 x 512 blocks."""
    flagged = [_NARROW.fullmatch(e.strip()) for e in errors]
    if not all(flagged):
        return False
    for m in flagged:
        with rasterio.open(path, overview_level=int(m.group(1))) as ov:  # type: ignore[union-attr]
            if ov.block_shapes[0] != (BLOCKSIZE, BLOCKSIZE):
                return False
    return True


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


def cog_facts(ds: rasterio.DatasetReader) -> dict[str, Any]:
    """What a task result says of an open COG: grid, CRS, WGS84 bbox, bands, layout, provenance, tags."""
    crs, bounds = ds.crs, list(ds.bounds)
    bbox = None
    if crs is not None and is_georeferenced(crs):
        bbox = list(transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21))
    tags = ds.tags()
    return {"crs": crs_string(crs), "bounds": bounds, "bbox_wgs84": bbox, "shape": [ds.height, ds.width],
            "transform": list(ds.transform)[:6], "count": ds.count, "dtype": ds.dtypes[0],
            "nodata": nodata_json(ds.nodata),
            "compression": ds.compression.name.lower() if ds.compression else "none",
            "blocksize": list(ds.block_shapes[0]), "colorinterp": [c.name for c in ds.colorinterp],
            "has_mask": any(MaskFlags.per_dataset in f for f in ds.mask_flag_enums),
            "provenance": tags.get(PROVENANCE_TAG), "tags": tags}


def check_cog(path: str, *, stats: list[dict[str, Any]] | None = None, cache_bytes: int = CHECK_CACHE_BYTES,
              window_bytes: int | None = STATS_BYTES, threads: int | None = None) -> dict[str, Any]:
    """Check the local COG at ``path`` and return its facts (everything but URLs and checksums).

    ``stats`` are the output's band statistics when the caller counted them already (a conversion
    that measured them on the way, or the tiles a COG was assembled from); otherwise exact
    statistics are computed under a ``GDAL_CACHEMAX`` of ``cache_bytes``. With ``window_bytes`` they
    are read one window of whole blocks of about that size at a time, so a check of a 10 GB COG holds
    a few MiB; with None they are read in strips of many blocks (faster, larger buffers, for which
    glibc's heap is tuned by :func:`~geoproc.raster.heap.heap_for_gdal`). ``threads`` sets
    ``GDAL_NUM_THREADS`` for decoding (None keeps GDAL's setting).

    Returns:
        :func:`cog_facts` plus ``overviews`` (decimation factors), ``band_stats`` and ``warnings``
        (a list of :class:`~geoproc.errors.TaskWarning`).

    Raises:
        OutputCheckFailed: the file is not a valid COG or its overviews are empty.
    """
    warnings = validate_cog(path)
    env: dict[str, Any] = {"GDAL_CACHEMAX": cache_bytes}  # bytes: rasterio sets an int as GDAL's cache size
    if threads is not None:
        env["GDAL_NUM_THREADS"] = str(threads)
    with ExitStack() as stack:
        if window_bytes is None:
            stack.enter_context(heap_for_gdal())
        stack.enter_context(rasterio.Env(**env))
        ds = stack.enter_context(rasterio.open(path))
        if stats is None:
            stats = band_stats(ds, block_windows(ds, window_bytes, BLOCKSIZE) if window_bytes else None)
        facts = cog_facts(ds)
    facts["overviews"] = check_overviews(path, stats)
    facts["band_stats"] = stats
    facts["warnings"] = warnings
    return facts

