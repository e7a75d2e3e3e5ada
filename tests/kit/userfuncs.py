"""Functions a user would write for the ``process`` job; each records the process it ran in.

Loaded by tests both as ``kit.userfuncs:NAME`` and as ``path/to/userfuncs.py:NAME``. Every call appends
its process id to :data:`PIDS` (workers started before a test do not see its environment) so a test can
tell that it ran on the workers, not in the test's own process.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import xarray as xr

PIDS = os.path.join(tempfile.gettempdir(), "geoproc-test-userfuncs.pids")


def _record() -> None:
    with open(PIDS, "a") as f:
        f.write(f"{os.getpid()}\n")


def focal_mean(ds: xr.Dataset) -> xr.DataArray:
    """The 3 x 3 mean of b1 over the valid pixels around each pixel (NaN where none is valid).

    The nine neighbours are summed in a fixed order, so a pixel's value does not depend on the window
    it was computed in: the same bits on a region with its halo as on the whole raster.
    """
    _record()
    a = ds["b1"].values.astype("float64")
    p = np.pad(a, 1, constant_values=np.nan)
    h, w = a.shape
    stack = np.stack([p[i:i + h, j:j + w] for i in range(3) for j in range(3)])
    valid = np.isfinite(stack)
    total = np.where(valid, stack, 0.0).sum(axis=0)
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / count, np.nan)
    return ds["b1"].copy(data=out.astype("float32"))


def ratio_and_mask(ds: xr.Dataset) -> xr.Dataset:
    """Two bands from a Dataset: nir / red, and 1 where nir > red."""
    _record()
    return xr.Dataset({"ratio": (ds.nir / ds.red).astype("float32"),
                       "greener": (ds.nir > ds.red).astype("float32")})


def raises_where_high(ds: xr.Dataset) -> xr.DataArray:
    """Fails on windows where b1 goes above 2000: not the first window, but regions further away."""
    if float(ds["b1"].max()) > 2000:
        raise ZeroDivisionError("no model for high ground")
    return ds["b1"]


def always_raises(ds: xr.Dataset) -> xr.DataArray:
    raise RuntimeError("broken on purpose")


def wrong_shape(ds: xr.Dataset) -> xr.DataArray:
    return ds["b1"].isel(y=slice(1, None))


def not_an_array(ds: xr.Dataset) -> list:
    return [1, 2, 3]


def floats(ds: xr.Dataset) -> xr.DataArray:
    return ds["b1"] / 3.0
