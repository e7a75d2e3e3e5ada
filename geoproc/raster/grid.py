"""The output grid of a reprojection, computed from the source header alone.

:func:`output_grid` gives GDAL's suggested warp output (``gdalwarp`` without ``-tr``), or a grid of a
given resolution; a source that crosses the antimeridian of a target whose longitudes wrap gets a grid
that continues past 180° instead of GDAL's whole-world strip. :class:`SourceInfo` is the part of the
source header the grid and the tiling plan need.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform
from rasterio.warp import transform as warp_points

log = logging.getLogger(__name__)

Window = tuple[int, int, int, int]  # col_off, row_off, width, height


@dataclass(frozen=True)
class SourceInfo:
    """What the plan needs to know about the source: its header, nothing else."""

    url: str
    crs: str  # WKT
    transform: tuple[float, ...]  # affine a, b, c, d, e, f
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None = None
    colorinterp: tuple[str, ...] | None = None  # GDAL colour interpretation of each band (``Red``, ``Gray``)

    @classmethod
    def from_dataset(cls, src: Any, url: str) -> SourceInfo:
        """Read the header of an open rasterio dataset."""
        nodata = src.nodata
        return cls(url=url, crs=src.crs.to_wkt(), transform=tuple(src.transform)[:6], width=src.width,
                   height=src.height, count=src.count, dtype=str(src.dtypes[0]),
                   nodata=None if nodata is None else float(nodata),
                   colorinterp=tuple(c.name.capitalize() for c in src.colorinterp))

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


def output_grid(source: SourceInfo, crs: str, resolution: float | None = None) -> tuple[Affine, int, int]:
    """The output grid (transform, width, height) of ``source`` reprojected to ``crs``.

    Uses GDAL's suggested warp output (what ``gdalwarp -t_srs`` picks) unless the source crosses the
    antimeridian of a target with a longitude wrap; then the extent is computed from densely sampled
    source points with longitudes unwrapped past 180°, and the resolution follows GDAL's rule (the same
    number of pixels along the diagonal).
    """
    crossing = _antimeridian_extent(source, crs)
    if crossing is None:
        kw: dict[str, Any] = {"resolution": resolution} if resolution else {}
        left, bottom, right, top = window_bounds(source.affine, (0, 0, source.width, source.height))
        tr, w, h = calculate_default_transform(source.crs, crs, source.width, source.height, left, bottom, right, top,
                                               **kw)
        return tr, int(w), int(h)
    left, bottom, right, top = crossing
    if resolution is None:
        resolution = math.hypot(right - left, top - bottom) / math.hypot(source.width, source.height)
    w = max(1, int(math.ceil((right - left) / resolution - 1e-9)))
    h = max(1, int(math.ceil((top - bottom) / resolution - 1e-9)))
    return Affine(resolution, 0.0, left, 0.0, -resolution, top), w, h


def _antimeridian_extent(source: SourceInfo, crs: str) -> tuple[float, float, float, float] | None:
    """The unwrapped extent in ``crs`` when the source straddles its antimeridian, else None."""
    dst = CRS.from_user_input(crs)
    if not (dst.is_geographic or _is_global_cylindrical(dst)):
        return None
    n = 41
    u = np.linspace(0.0, 1.0, n)
    gx, gy = np.meshgrid(u * source.width, u * source.height)
    X, Y = source.affine @ (gx.ravel(), gy.ravel())
    lon, lat = warp_points(source.crs, "EPSG:4326", X.tolist(), Y.tolist())
    lon, lat = np.asarray(lon), np.asarray(lat)
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = (lon[ok] + 180.0) % 360.0 - 180.0, lat[ok]
    if lon.size == 0 or lon.max() - lon.min() <= 180.0:
        return None
    unwrapped = np.where(lon < 0, lon + 360.0, lon)
    if unwrapped.max() - unwrapped.min() >= 180.0:
        return None  # truly wide (a polar cap or a global raster): GDAL's answer stands
    if dst.is_geographic:
        xs, ys = unwrapped, lat
    else:
        xs, ys = warp_points("EPSG:4326", dst, lon.tolist(), lat.tolist())
        xs, ys = np.asarray(xs), np.asarray(ys)
        world = 2 * _half_world(dst)
        xs = np.where(lon < 0, xs + world, xs)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _is_global_cylindrical(crs: Any) -> bool:
    """Whether ``crs`` is a whole-world cylindrical projection (its x wraps at the antimeridian)."""
    try:
        return crs.to_epsg() in (3857, 3395, 900913, 54004, 32662, 4087)
    except Exception:  # noqa: BLE001 - a CRS PROJ cannot match to a code is simply not one of these
        log.warning("EPSG code of the target CRS not found; treated as not wrapping at the antimeridian",
                    exc_info=True)
        return False


def _half_world(crs: Any) -> float:
    xs, _ = warp_points("EPSG:4326", crs, [180.0], [0.0])
    return abs(float(xs[0]))


def pixel_scale(source: SourceInfo, crs: str, affine: Affine, width: int, height: int) -> float:
    """Output pixel size over source pixel size at the middle of the output grid (>1: shrinking).

    Raises:
        ValueError: the transformed pixel is degenerate (not finite or of zero size).
    """
    cx, cy = width / 2, height / 2
    X, Y = affine @ (np.array([cx, cx + 1, cx]), np.array([cy, cy, cy + 1]))
    sx, sy = warp_points(crs, source.crs, X.tolist(), Y.tolist())
    col, row = ~source.affine @ (np.asarray(sx), np.asarray(sy))
    d = max(math.hypot(col[1] - col[0], row[1] - row[0]), math.hypot(col[2] - col[0], row[2] - row[0]))
    if not math.isfinite(d) or d <= 0:
        raise ValueError("degenerate pixel scale")
    return d


def window_bounds(affine: Affine, window: Window) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of ``window`` (col_off, row_off, width, height) on the grid of ``affine``."""
    x0, y0, w, h = window
    xa, ya = affine @ (x0, y0)
    xb, yb = affine @ (x0 + w, y0 + h)
    return min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)


def round_up(n: int, k: int) -> int:
    """``n`` rounded up to a multiple of ``k`` (at least ``k``)."""
    return max(k, int(math.ceil(n / k)) * k)
