"""Writing arrays to local rasters: a tile as a COG or as a plain tiled part, and the whole-grid file.

The three forms of the tiled outputs: a ``tiles`` output writes each tile as a COG of its own
(:func:`write_cog`); a ``single`` output writes each tile as a fast-ZSTD tiled GeoTIFF part
(:func:`write_part`) that the assembly step mosaics; the one-task tiled route writes every tile
straight into an uncompressed tiled GeoTIFF of the whole grid (:func:`write_grid`). All use the
512 x 512 COG block, so block-aligned windows go to disk whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine

from .profiles import BLOCKSIZE

log = logging.getLogger(__name__)


def mem_dataset(array: np.ndarray, crs: Any, transform: Sequence[float], nodata: float | None) -> Any:
    """An open in-memory (GDAL ``MEM``) dataset holding ``array`` (``(bands, rows, cols)``)."""
    count, height, width = array.shape
    ds = rasterio.open("", "w+", driver="MEM", width=width, height=height, count=count, dtype=array.dtype,
                       crs=crs, transform=Affine(*transform[:6]), nodata=nodata)
    ds.write(array)
    return ds


def write_cog(array: np.ndarray, path: str, *, crs: Any, transform: Sequence[float], nodata: float | None,
              options: dict[str, str]) -> None:
    """Write a ``(bands, rows, cols)`` array as a COG at local ``path`` (GDAL's COG driver)."""
    with mem_dataset(array, crs, transform, nodata) as mem:
        rasterio.shutil.copy(mem, path, driver="COG", **options)


TILED = {"tiled": True, "blockxsize": BLOCKSIZE, "blockysize": BLOCKSIZE, "bigtiff": "IF_SAFER"}
PART_OPTIONS = {"compress": "ZSTD", "zstd_level": 1, "interleave": "band"}  # quick to write and to read again


def write_part(array: np.ndarray, path: str, *, crs: Any, transform: Sequence[float],
               nodata: float | None, options: dict[str, Any] | None = None) -> None:
    """Write a tile as a plain tiled GeoTIFF (512 blocks) for an assembly: by default in fast ZSTD for
    the ``single`` assembly to decode, or with the creation ``options`` of the COG's own codec
    (:func:`~geoproc.raster.profiles.part_options`) for a COG stitched from its blocks."""
    count, height, width = array.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=array.dtype,
                       crs=crs, transform=Affine(*transform[:6]), nodata=nodata,
                       **{**TILED, **(options or PART_OPTIONS)}) as dst:
        dst.write(array)


def write_grid(path: str, *, crs: Any, transform: Sequence[float], width: int, height: int, count: int,
               dtype: str, nodata: float | None) -> Any:
    """Create an uncompressed tiled GeoTIFF of the whole grid (512 blocks) and return it open for writing.

    Windows written into it (whole 512 blocks when they are block-aligned) go straight to disk; nothing
    of the grid is held in memory.
    """
    return rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
                         transform=Affine(*transform[:6]), nodata=nodata, tiled=True, blockxsize=BLOCKSIZE,
                         blockysize=BLOCKSIZE, compress="NONE", interleave="band", bigtiff="IF_SAFER",
                         sparse_ok=True)
