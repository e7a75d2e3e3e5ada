"""Synthetic rasters the tests write for themselves, and GDAL's whole-array warp as a reference.

* ``write_geotiff`` — a GeoTIFF of any CRS, bounds, size, dtype, nodata and band count; by default a
  smooth, deterministic ramp so that resampling results are stable (the ``raster_factory`` fixture).
* ``write_numbered`` — the i-th of a family of small GeoTIFFs of several sizes, dtypes and band counts.
* ``write_small_cogs`` — n small COGs in distinct places, with dates in their names.
* ``smooth``, ``CASES``, ``NODATA``, ``reference_warp`` — what the tiling tests compare against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.warp import reproject

NODATA = -9999.0

# name -> (crs, bounds) of the tiling tests' smooth rasters; each about 20-300 km wide at 1024 x 1024 px
CASES = {
    "utm33": ("EPSG:32633", (500000, 5000000, 520480, 5020480)),
    "polar3413": ("EPSG:3413", (-600000, -600000, 600000, 600000)),
    "geographic": ("EPSG:4326", (10.0, 40.0, 12.0, 42.0)),
    "antimeridian_utm60": ("EPSG:32660", (600000, 5000000, 900000, 5300000)),
}


def write_geotiff(path: Path, *, crs="EPSG:32633", bounds=(500000, 5000000, 510240, 5010240),
                  size=(1024, 1024), dtype="float32", nodata=None, bands=1, data=None, **profile) -> Path:
    """Write a GeoTIFF at ``path``; without ``data`` its bands are ramps ``(x + y + 17 b) % 251``."""
    w, h = size
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        yy, xx = np.mgrid[0:h, 0:w]
        base = (xx + yy) % 251
        data = np.stack([(base + 17 * b) % 251 for b in range(bands)]).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=data.shape[0], dtype=data.dtype,
                       crs=crs, transform=from_bounds(*bounds, w, h), nodata=nodata, **profile) as dst:
        dst.write(data)
    return path


def write_numbered(path: Path, i: int) -> Path:
    """A small deterministic GeoTIFF (256-352 px, a few data types and band counts), the i-th of its kind."""
    w = 256 + 32 * (i % 4)
    h = 256 + 32 * ((i // 4) % 3)
    yy, xx = np.mgrid[0:h, 0:w]
    kind = i % 3
    if kind == 0:
        data, nodata = ((xx * 3 + yy * 5 + i) % 997).astype("float32")[None], -9999.0
    elif kind == 1:
        data, nodata = np.stack([(xx + yy * b + i) % 251 for b in (1, 2, 3)]).astype("uint8"), None
    else:
        data, nodata = ((xx * yy + i) % 4000).astype("int16")[None], -1
    x0, y0 = 500000 + 5000 * i, 5000000
    return write_geotiff(path, crs="EPSG:32633", bounds=(x0, y0, x0 + 10 * w, y0 + 10 * h), size=(w, h),
                         nodata=nodata, data=data)


def write_small_cogs(directory: Path, n: int, size: int = 64) -> list[Path]:
    """n COGs of ``size`` x ``size`` uint8 (nodata 0 in one corner), in distinct places and with dated names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        x0, y0 = 10.0 + (i % 20) * 0.01, 45.0 + (i // 20) * 0.01
        p = directory / f"tile_{i:04d}_2024{1 + i % 12:02d}{1 + i % 28:02d}.tif"
        data = np.full((1, size, size), (i % 250) + 1, dtype="uint8")
        data[0, : size // 4, : size // 4] = 0
        with rasterio.open(p, "w", driver="COG", width=size, height=size, count=1, dtype="uint8",
                           crs="EPSG:4326", nodata=0,
                           transform=from_bounds(x0, y0, x0 + 0.01, y0 + 0.01, size, size)) as dst:
            dst.write(data)
        out.append(p)
    return out


def smooth(bands: int, h: int, w: int) -> np.ndarray:
    """Smooth, band-distinct values (gradients below 1 per pixel) so resampling differences stay small."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([100 + 50 * np.sin(xx / 97.0 + b) * np.cos(yy / 131.0) + 40 * b
                     for b in range(bands)]).astype("float32")


def reference_warp(path: Path, plan: dict, bands: list[int] | None = None, resampling: str = "bilinear"):
    """GDAL's warp of the whole raster onto the plan's grid (rasterio.warp.reproject of the full array)."""
    from affine import Affine

    with rasterio.open(path) as src:
        idx = bands or list(range(1, src.count + 1))
        data = src.read(idx)
        out = np.full((len(idx), plan["height"], plan["width"]), NODATA, dtype=data.dtype)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs, src_nodata=src.nodata,
                  dst_transform=Affine(*plan["transform"]), dst_crs=plan["crs"], dst_nodata=NODATA,
                  resampling=Resampling[resampling])
    return out


def write_scene(path: Path, *, size: tuple[int, int], nodata_corner: tuple[int, int], block: int = 256) -> np.ndarray:
    """A 4-band uint16 scene at ``path``, bands described blue, green, red, nir; returns its data.

    ``size`` is (width, height); nodata (0) fills the top-left ``nodata_corner`` (rows, cols); tiled
    in ``block`` px.
    """
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    data = np.stack([(xx * (b + 1) + yy * 3 + 100 * b) % 4000 + 1 for b in range(4)]).astype("uint16")
    data[:, : nodata_corner[0], : nodata_corner[1]] = 0
    write_geotiff(path, size=(w, h), dtype="uint16", nodata=0, data=data, tiled=True, blockxsize=block,
                  blockysize=block)
    with rasterio.open(path, "r+") as ds:
        ds.descriptions = ("blue", "green", "red", "nir")
    return data
