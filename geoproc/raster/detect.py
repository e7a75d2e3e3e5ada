"""Raster type detection: rgb, rgba, dem, continuous, categorical or multispectral, with a confidence.

The type decides resampling (categorical data must never be interpolated) and which tiers fit. It
comes from the header (band count, data type, colour interpretation, colour table) and, for single
bands, from a sample of the values: few distinct integral values mean classes, even when they are
stored as floats (the seed's "categorical in float" check).
"""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

MAX_CLASSES = 32
DEM_RANGE = (-500.0, 9000.0)  # metres: below the Dead Sea shore to above Everest, with margin


def nodata_json(value: float | None) -> float | str | None:
    """A nodata value as JSON allows it: NaN and infinities as the strings STAC uses."""
    if value is None:
        return None
    if np.isnan(value):
        return "nan"
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if float(value).is_integer() else float(value)


def detect_type(src: rasterio.DatasetReader, data: np.ma.MaskedArray) -> tuple[str, str, str]:
    """(raster type, confidence high|medium|low, reason) from the header and a masked sample."""
    count, dtype = src.count, src.dtypes[0]
    ci = list(src.colorinterp)
    if count == 1 and ci[0] == ColorInterp.palette:
        return "categorical", "high", "single band with a colour table"
    if count == 3 and dtype == "uint8":
        rgb = ci[:3] == [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        return "rgb", "high" if rgb else "medium", "3 uint8 bands" + (" tagged red, green, blue" if rgb else "")
    if count == 4 and dtype == "uint8":
        if ci[3] == ColorInterp.alpha:
            return "rgba", "high", "4 uint8 bands, the last one alpha"
        return "multispectral", "medium", "4 uint8 bands without alpha (e.g. RGB + NIR)"
    if count == 2 and ci[1] == ColorInterp.alpha:
        return "continuous", "medium", "grey band with alpha"
    if count >= 2:
        return "multispectral", "medium" if count >= 3 else "low", f"{count} {dtype} bands"
    values = data.compressed()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return "continuous", "low", "no valid values sampled"
    integral = values.dtype.kind in "iu" or bool(np.all(np.mod(values, 1) == 0))
    uniques = np.unique(values[:1_000_000])
    if integral and uniques.size <= MAX_CLASSES:
        conf = "high" if values.dtype.kind in "iu" and uniques.size <= 16 else "medium"
        where = "" if values.dtype.kind in "iu" else " stored as floats"
        return "categorical", conf, f"{uniques.size} distinct integral values{where}"
    lo, hi = float(values.min()), float(values.max())
    if dtype != "uint8" and DEM_RANGE[0] <= lo and hi <= DEM_RANGE[1] and (dtype.startswith("float") or dtype in
                                                                          ("int16", "int32", "uint16")):
        return "dem", "medium", f"single {dtype} band with values {lo:g}..{hi:g} (an elevation range)"
    return "continuous", "medium", f"single {dtype} band with {uniques.size}+ distinct values"
