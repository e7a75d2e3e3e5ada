"""Footprints: output extents as GeoJSON polygons and STAC bboxes in EPSG:4326.

Extents are densified before reprojection (a straight edge in UTM is curved in degrees). Longitudes
are kept continuous across the antimeridian in polygons (values past 180° rather than a jump), and
bboxes follow the STAC/GeoJSON convention for a crossing: west > east.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EDGE_POINTS = 21


def _ring(bounds: tuple[float, float, float, float], n: int = EDGE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    left, bottom, right, top = bounds
    t = np.linspace(0.0, 1.0, n)[:-1]
    xs = np.concatenate([left + (right - left) * t, np.full(n - 1, right), right - (right - left) * t,
                         np.full(n - 1, left)])
    ys = np.concatenate([np.full(n - 1, top), top - (top - bottom) * t, np.full(n - 1, bottom),
                         bottom + (top - bottom) * t])
    return xs, ys


def _lonlat(crs: Any, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_points

    xs, ys = _ring(bounds)
    src = CRS.from_user_input(crs)
    if src.is_geographic:
        return xs, ys  # keep longitudes past 180 as they are in the grid
    lon, lat = warp_points(src, "EPSG:4326", xs.tolist(), ys.tolist())
    lon, lat = np.asarray(lon), np.asarray(lat)
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    if lon.size and lon.max() - lon.min() > 180.0:
        wrapped = np.where(lon < 0, lon + 360.0, lon)
        if wrapped.max() - wrapped.min() < 180.0:
            lon = wrapped
    return lon, lat


def polygon_wgs84(crs: Any, bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    """A GeoJSON Polygon of ``bounds`` (in ``crs``) in EPSG:4326, densified along each edge."""
    lon, lat = _lonlat(crs, bounds)
    coords = [[round(float(x), 9), round(float(y), 9)] for x, y in zip(lon, lat, strict=True)]
    if coords:
        coords.append(coords[0])
    return {"type": "Polygon", "coordinates": [coords]}


def bbox_wgs84(crs: Any, bounds: tuple[float, float, float, float]) -> list[float]:
    """[west, south, east, north] in degrees; west > east when the extent crosses the antimeridian."""
    lon, lat = _lonlat(crs, bounds)
    west, east = float(lon.min()), float(lon.max())
    if west >= 180.0:
        west, east = west - 360.0, east - 360.0
    elif east > 180.0:
        east -= 360.0
    return [west, float(lat.min()), east, float(lat.max())]


def measured(path: str) -> dict[str, Any]:
    """The footprint of a written raster, read back from its header (not taken from the plan)."""
    import rasterio

    with rasterio.open(path) as ds:
        b = tuple(ds.bounds)
        return {"crs": ds.crs.to_string(), "bounds": list(b), "transform": list(ds.transform)[:6],
                "shape": [ds.height, ds.width], "count": ds.count, "dtype": ds.dtypes[0],
                "nodata": ds.nodata, "bbox_wgs84": bbox_wgs84(ds.crs, b)}
