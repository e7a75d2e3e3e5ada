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
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from ..errors import OutputCheckFailed
from .detect import nodata_json
from .profiles import BLOCKSIZE
from .validate import crs_string, is_georeferenced

PROVENANCE_TAG = "GEOPROC_PROVENANCE"
_DATETIME_TAGS = ("TIFFTAG_DATETIME", "ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATETIME", "DATE_TIME")


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

    ``crs`` is the effective source CRS; ``crs_given`` says it came from the job (``input_crs``) rather
    than the file, in which case it is assigned without resampling.
    """
    from rio_cogeo.cogeo import cog_translate

    warp = needs_warp(crs, target_crs)
    add_mask = False
    with ExitStack() as stack:
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
        cog_translate(source, dst_path, profile, overview_resampling=overview_resampling, resampling="nearest",
                      add_mask=add_mask, overview_level=overview_levels(source.width, source.height), quiet=True, forward_band_tags=True,
                      additional_cog_metadata={PROVENANCE_TAG: provenance}, config=gdal_config or {})
    return {"reprojected": warp, "masked": add_mask}


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


def band_stats(ds: rasterio.DatasetReader) -> list[dict[str, Any]]:
    """Exact per-band minimum, maximum, mean, stddev and valid_percent, read block by block."""
    n = ds.count
    cnt = np.zeros(n)
    s1 = np.zeros(n)
    s2 = np.zeros(n)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    total = ds.width * ds.height
    for _, window in ds.block_windows(1):
        data = ds.read(window=window, masked=True)
        for b in range(n):
            v = data[b].compressed()
            if v.dtype.kind == "f":
                v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            v64 = v.astype("float64")
            cnt[b] += v.size
            s1[b] += v64.sum()
            s2[b] += np.square(v64).sum()
            lo[b] = min(lo[b], float(v.min()))
            hi[b] = max(hi[b], float(v.max()))
    out = []
    for b in range(n):
        if cnt[b] == 0:
            out.append({"minimum": None, "maximum": None, "mean": None, "stddev": None, "valid_percent": 0.0})
            continue
        mean = s1[b] / cnt[b]
        var = max(0.0, s2[b] / cnt[b] - mean * mean)
        out.append({"minimum": _num(lo[b]), "maximum": _num(hi[b]), "mean": float(mean), "stddev": math.sqrt(var),
                    "valid_percent": round(100.0 * float(cnt[b]) / total, 4)})
    return out


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


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


def describe(path: str) -> dict[str, Any]:
    """Check the local COG at ``path`` and return its facts (everything but URLs and checksums).

    Raises:
        OutputCheckFailed: the file is not a valid COG or its overviews are empty.
    """
    warnings = validate_cog(path)
    with rasterio.open(path) as ds:
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
