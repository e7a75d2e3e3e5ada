"""The overview pyramid, computed level by level in bounded memory with GDAL's resampling kernels.

Overviews halve the raster until its long side fits in one 512 x 512 block (:func:`overview_levels`),
so a raster that already fits gets none. :func:`build_overview_levels` computes each level from the
previous one (the first from the full-resolution mosaic), one 512 x 512 output window at a time, so
memory is one window whatever the raster size. Overviews are never written through a Dask array
writer (rioxarray#410: empty overviews).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from .profiles import BLOCKSIZE
from .writers import TILED, mem_dataset

log = logging.getLogger(__name__)


def overview_levels(width: int, height: int, blocksize: int = BLOCKSIZE) -> int:
    """Number of 2x overview levels until the long side fits in one block (0 for one-block rasters)."""
    n = 0
    while max(width, height) / 2**n > blocksize:
        n += 1
    return n


OVERVIEW_MARGIN = 8  # source pixels read around each window: the widest kernel (lanczos, 3 px at 2x) and more
WINDOW_BYTES = 4 * 2**20  # bytes of source pixels one overview step holds (bands are split to fit)


def build_overview_levels(src_path: str, work_dir: str, *, levels: int, resampling: str,
                          nodata: float | None, window_bytes: int = WINDOW_BYTES, name: str = "ovr{k}.tif",
                          options: dict[str, Any] | None = None) -> list[str]:
    """Compute ``levels`` 2x overviews of ``src_path``, each from the previous one, window by window.

    Level *k* is a tiled GeoTIFF ``name`` (``{k}`` its level) of ``ceil(size / 2)`` pixels of level *k - 1*,
    uncompressed, or with the creation ``options`` given (a COG's codec: every band of a window is then
    written at once, so that each block is compressed once). Every
    512 x 512 output window is computed from its 1024 x 1024 source window plus a margin of
    :data:`OVERVIEW_MARGIN` pixels (so kernels wider than 2 pixels see their neighbours and windows join
    without seams), resampled by GDAL (``resampling``: nearest, average, mode, bilinear, cubic, ...;
    nodata pixels are left out as GDAL's overview builder does). Bands are processed in groups whose
    source window fits ``window_bytes``.

    Returns:
        The level files, largest first.
    """
    paths: list[str] = []
    prev = src_path
    creation = options or {"compress": "NONE", "interleave": "band"}
    for k in range(1, levels + 1):
        out = os.path.join(work_dir, name.format(k=k))
        with rasterio.open(prev) as src:
            w, h = (src.width + 1) // 2, (src.height + 1) // 2
            dtype, count = src.dtypes[0], src.count
            side = 2 * BLOCKSIZE + 2 * OVERVIEW_MARGIN
            group = count if options else max(1, window_bytes // (side * side * np.dtype(dtype).itemsize))
            georef = {"crs": src.crs, "transform": src.transform @ Affine.scale(src.width / w, src.height / h)}
            with rasterio.open(out, "w", driver="GTiff", width=w, height=h, count=count, dtype=dtype, nodata=nodata,
                               **georef, **{**TILED, **creation}) as dst:
                for y0 in range(0, h, BLOCKSIZE):
                    for x0 in range(0, w, BLOCKSIZE):
                        win = (x0, y0, min(BLOCKSIZE, w - x0), min(BLOCKSIZE, h - y0))
                        for b0 in range(0, count, group):
                            bands = list(range(b0 + 1, min(count, b0 + group) + 1))
                            dst.write(_downsample(src, bands, win, resampling, nodata), indexes=bands,
                                      window=Window(*win))
        paths.append(out)
        prev = out
    return paths


CELL_KERNELS = ("nearest", "average")  # computed by NumPy from each 2 x 2 cell alone


def _downsample(src: Any, bands: list[int], win: tuple[int, int, int, int], resampling: str,
                nodata: float | None) -> np.ndarray:
    """Output window ``win`` of the 2x overview of ``src``: its source window with a margin, resampled."""
    x0, y0, w, h = win
    m = OVERVIEW_MARGIN  # even, so the padded window keeps the 2x grid
    X0, Y0, X1, Y1 = 2 * x0 - m, 2 * y0 - m, 2 * (x0 + w) + m, 2 * (y0 + h) + m
    sx0, sy0, sx1, sy1 = max(0, X0), max(0, Y0), min(src.width, X1), min(src.height, Y1)
    data = src.read(bands, window=Window(sx0, sy0, sx1 - sx0, sy1 - sy0))
    data = _pad(data, ((0, 0), (sy0 - Y0, Y1 - sy1), (sx0 - X0, X1 - sx1)), nodata)
    return halve(data, resampling, nodata)[:, m // 2:m // 2 + h, m // 2:m // 2 + w]


def downsample(data: np.ndarray, resampling: str, nodata: float | None) -> np.ndarray:
    """The 2x overview of a whole ``(bands, rows, cols)`` array, as :func:`build_overview_levels` computes
    it for a raster of these pixels: beyond the array's edges lie nodata pixels (or the edge's own)."""
    rows, cols = data.shape[1:]
    m = 0 if resampling in CELL_KERNELS else OVERVIEW_MARGIN  # a cell's own pixels need no margin
    padded = _pad(data, ((0, 0), (m, m + rows % 2), (m, m + cols % 2)), nodata)
    return halve(padded, resampling, nodata)[:, m // 2:m // 2 + (rows + 1) // 2, m // 2:m // 2 + (cols + 1) // 2]


def _pad(data: np.ndarray, pad: tuple[tuple[int, int], ...], nodata: float | None) -> np.ndarray:
    """Pixels outside the raster: nodata, or the edge's own pixels when there is no nodata."""
    if not any(a or b for a, b in pad):
        return data
    if nodata is None:
        return np.pad(data, pad, mode="edge")
    return np.pad(data, pad, constant_values=np.asarray(nodata).astype(data.dtype))


def halve(data: np.ndarray, resampling: str, nodata: float | None) -> np.ndarray:
    """Resample an even-sized ``(bands, 2h, 2w)`` array to ``(bands, h, w)`` with GDAL's kernel ``resampling``.

    ``nearest`` takes the top-left pixel of each 2 x 2 cell, as GDAL's overview builder does;
    ``average`` is the mean of the cell's valid pixels (neither nodata nor NaN; nodata when there is none),
    computed in NumPy, rounded half up for integers as GDAL does; every other kernel is GDAL's own.
    """
    if resampling == "nearest":
        return data[:, 0::2, 0::2]
    if resampling == "average":
        return _average(data, nodata)
    bands, rows, cols = data.shape
    with warnings.catch_warnings():  # a bare pixel array: no georeference is needed to resample it
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        mem = mem_dataset(data, None, (1, 0, 0, 0, 1, 0), nodata)
    with mem:
        return mem.read(out_shape=(bands, rows // 2, cols // 2), resampling=Resampling[resampling])


def _average(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """The mean of the valid pixels of each 2 x 2 cell (see :func:`halve`), summed pair by pair: floats in
    their own precision (float32 sums are within an ulp of GDAL's), integers exactly."""
    floating = data.dtype.kind == "f"
    valid = ~np.isnan(data) if floating else None
    if nodata is not None and not (floating and np.isnan(nodata)):
        ok = data != np.asarray(nodata).astype(data.dtype)
        valid = ok if valid is None else valid & ok
    if floating:
        acc = np.float64 if data.dtype == np.float64 else np.float32
    else:
        acc = np.int64 if data.dtype.itemsize >= 4 else np.int32
    v = data.astype(acc, copy=False)
    if valid is not None:
        v = np.where(valid, v, acc(0))
    total = v[:, 0::2, :] + v[:, 1::2, :]
    total = total[:, :, 0::2] + total[:, :, 1::2]
    if valid is None:
        count = np.full(total.shape, 4, np.uint8)
    else:
        c = valid.view(np.uint8)
        c = c[:, 0::2, :] + c[:, 1::2, :]
        count = c[:, :, 0::2] + c[:, :, 1::2]
    empty = count == 0
    count[empty] = 1
    if floating:
        out = (total / count).astype(data.dtype)
    else:  # round half up, as GDAL does
        out = ((2 * total + count) // (2 * count.astype(acc))).astype(data.dtype)
    if empty.any():
        out[empty] = np.nan if nodata is None else nodata
    return out
