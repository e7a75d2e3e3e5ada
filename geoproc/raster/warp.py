"""Per-tile reprojection: read one source window, warp it onto one output tile.

A tile task reads exactly the source window its plan names (bands in the order the user gave them,
``[5, 3, 2]`` stays 5, 3, 2), then runs GDAL's warper on that array with the output tile's transform.
Memory is the window plus the tile plus GDAL's bounded warp buffer, whatever the size of the raster.

GDAL's warper runs on the window array, so a tile equals the same pixels of a whole-raster warp up to
GDAL's approximate transformer (``tolerance``, 0.125 px by default; 0 makes it exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .tiling import WARP_MEM, Window

TOLERANCE = 0.125  # GDAL's default error threshold of the approximate transformer, in pixels


def fill_value(dtype: str, nodata: float | None) -> Any:
    """The value an output pixel holds where no source pixel lands: nodata, else 0 (as GDAL does)."""
    return np.dtype(dtype).type(0 if nodata is None else nodata)


def read_window(src: Any, bands: Sequence[int], window: Window) -> np.ndarray:
    """Read ``bands`` (1-based, in the given order) of ``window`` from an open rasterio dataset."""
    from rasterio.windows import Window as RioWindow

    return src.read(indexes=list(bands), window=RioWindow(*window))


def warp_tile(src: Any, *, bands: Sequence[int], src_window: Window | None, dst_crs: Any,
              dst_transform: Sequence[float], dst_shape: tuple[int, int], resampling: str = "nearest",
              dst_nodata: float | None = None, tolerance: float = TOLERANCE,
              warp_mem: int = WARP_MEM, threads: int = 1) -> np.ndarray:
    """Reproject ``src`` onto one output tile; returns a ``(bands, rows, cols)`` array.

    Args:
        src: open rasterio dataset.
        bands: 1-based source bands in output order.
        src_window: the source pixels the tile needs (from the plan); None gives an all-nodata tile.
        dst_crs: target CRS.
        dst_transform: affine of the tile (6 numbers).
        dst_shape: (rows, cols) of the tile.
        resampling: GDAL resampling name.
        dst_nodata: output nodata (None: pixels without source are 0, as GDAL does).
        tolerance: error threshold of GDAL's approximate transformer in pixels (0 = exact).
        warp_mem: GDAL warp working memory in bytes.
        threads: GDAL warper threads. A tile task alone on a worker (the last tiles of a stage) then
            still uses every core; tasks running side by side share them.
    """
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject
    from rasterio.windows import Window as RioWindow

    dtype = src.dtypes[bands[0] - 1]
    out = np.full((len(bands), *dst_shape), fill_value(dtype, dst_nodata), dtype=dtype)
    if src_window is None:
        return out
    data = read_window(src, bands, src_window)
    src_transform = src.window_transform(RioWindow(*src_window))
    nodatas = [src.nodatavals[b - 1] for b in bands]
    groups: dict[Any, list[int]] = {}
    for i, nd in enumerate(nodatas):  # bands that share a nodata value are warped in one call
        groups.setdefault(nd, []).append(i)
    for nd, idx in groups.items():
        whole = len(idx) == len(bands)
        block = data if whole else data[idx]
        dst = out if whole else out[idx]  # fancy indexing copies: written back below
        reproject(block, dst, src_transform=src_transform, src_crs=src.crs,
                  src_nodata=nd if _holds(block, nd) else None, dst_transform=Affine(*dst_transform[:6]), dst_crs=dst_crs,
                  dst_nodata=dst_nodata, resampling=Resampling[resampling], num_threads=threads,
                  warp_mem_limit=max(1, warp_mem // 2**20), tolerance=tolerance)
        if not whole:
            out[idx] = dst
    return out


def _holds(block: np.ndarray, nodata: float | None) -> bool:
    """Whether any pixel of ``block`` is nodata.

    Given a source nodata value, GDAL's warper builds a validity mask for every chunk and takes its
    general, masked kernel, about twice as slow. A window without a single nodata pixel warps to the
    same output without it, so the value is passed only when the window really holds it.
    """
    if nodata is None or (np.isnan(nodata) and block.dtype.kind != "f"):
        return False
    for band in block:  # row strips: the comparison's boolean temporary stays small
        for r0 in range(0, band.shape[0], 256):
            strip = band[r0:r0 + 256]
            if (np.isnan(strip) if np.isnan(nodata) else strip == nodata).any():
                return True
    return False
