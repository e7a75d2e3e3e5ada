"""Functions for the ``process`` job (``function=jobs/functions/filters.py:NAME``).

Each takes the inputs of one region plus its halo as an ``xarray.Dataset`` (nodata is NaN) and returns
the same pixels. Run with ``halo`` at least the filter's reach, the result equals the filter applied
to the whole raster at once, edges included.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def focal_mean(ds: xr.Dataset) -> xr.DataArray:
    """The mean of the valid pixels of the 3 x 3 window around each pixel of ``b1`` (needs ``halo=1``).

    At the raster's edge and beside nodata only the valid neighbours count; a pixel with none is NaN.
    The nine neighbours are added in a fixed order, so a pixel's value is the same, to the bit, in any
    region it is computed in.
    """
    a = ds["b1"].values.astype("float64")
    h, w = a.shape
    padded = np.pad(a, 1, constant_values=np.nan)
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for dy in range(3):
        for dx in range(3):
            v = padded[dy:dy + h, dx:dx + w]
            ok = np.isfinite(v)
            total += np.where(ok, v, 0.0)
            count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return ds["b1"].copy(data=mean.astype("float32"))


def slope(ds: xr.Dataset) -> xr.DataArray:
    """Slope of the DEM ``b1`` in degrees, from central differences (needs ``halo=1``; NaN at nodata)."""
    z = ds["b1"]
    dx = abs(float(z.x[1] - z.x[0])) if z.sizes["x"] > 1 else 1.0
    dy = abs(float(z.y[1] - z.y[0])) if z.sizes["y"] > 1 else 1.0
    gy, gx = np.gradient(z.values.astype("float64"), dy, dx)
    return z.copy(data=np.degrees(np.arctan(np.hypot(gx, gy))).astype("float32"))
