"""Item geometries in EPSG:4326: a raster's bounds, or the outline of its valid pixels when cheap.

* :func:`bounds_geometry` needs no pixels: the bounds polygon, densified along its edges (so a UTM
  tile's curved outline in longitude/latitude is followed) and reprojected to EPSG:4326.
* :func:`valid_footprint` reads the dataset mask at a decimated size (at most ``max_size`` pixels on
  a side, which GDAL serves from the smallest overview of a COG) and returns the outline of the
  valid pixels, simplified to about one decimated pixel. It returns ``None`` when every pixel is
  valid by construction (no nodata, no mask, no alpha): then the bounds are the footprint.
"""

from __future__ import annotations

import math
from typing import Any

EPSG_4326 = "EPSG:4326"


def _is_wgs84(crs: Any) -> bool:
    from rasterio.crs import CRS

    c = CRS.from_user_input(crs)
    if not (c.is_geographic or c.is_projected):
        from ..errors import CrsMissing

        raise CrsMissing(f"the CRS {c.to_string()[:80]!r} is a local (engineering) system with no link to the "
                         "Earth, so the raster has no longitude/latitude footprint",
                         remediation="Georeference the raster (assign a geographic or projected CRS).")
    return c.to_epsg() == 4326


def _densify_ring(bounds: tuple[float, float, float, float], points: int) -> list[tuple[float, float]]:
    minx, miny, maxx, maxy = bounds
    corners = [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)]
    ring: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:], strict=False):
        for k in range(points):
            t = k / points
            ring.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
    ring.append(ring[0])
    return ring


def bounds_geometry(bounds: list[float] | tuple[float, ...], crs: Any, densify: int = 21,
                    precision: int = 7) -> dict[str, Any]:
    """The polygon of ``bounds`` (in ``crs``) in EPSG:4326, edges densified with ``densify`` points."""
    from rasterio.warp import transform_geom

    b = tuple(float(v) for v in bounds[:4])
    if _is_wgs84(crs):
        ring = _densify_ring(b, 1)
        return {"type": "Polygon", "coordinates": [[[round(x, precision), round(y, precision)] for x, y in ring]]}
    geom = {"type": "Polygon", "coordinates": [_densify_ring(b, densify)]}
    out = transform_geom(crs, EPSG_4326, geom, precision=precision)
    return _plain(out)


def valid_footprint(src: Any, max_size: int = 512, precision: int = 7) -> dict[str, Any] | None:
    """The outline of ``src``'s valid pixels in EPSG:4326, or ``None`` when all pixels are valid.

    Args:
        src: an open rasterio dataset with a CRS.
        max_size: the largest side, in pixels, of the mask that is read.
        precision: decimal places kept in the coordinates.
    """
    from rasterio.enums import MaskFlags

    _is_wgs84(src.crs)  # refuses local (engineering) systems before any pixel is read
    flags = src.mask_flag_enums
    if all(f == [MaskFlags.all_valid] for f in flags):
        return None
    from rasterio.features import shapes
    from rasterio.transform import Affine
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    scale = max(1.0, max(src.width, src.height) / max_size)
    w, h = max(1, math.ceil(src.width / scale)), max(1, math.ceil(src.height / scale))
    mask = src.dataset_mask(out_shape=(h, w))
    valid = (mask > 0).astype("uint8")
    if not valid.any() or valid.all():
        return None  # nothing valid (the caller decides) or nothing masked (the bounds are the outline)
    transform = src.transform @ Affine.scale(src.width / w, src.height / h)
    polys = [shape(g) for g, v in shapes(valid, mask=valid.astype(bool), transform=transform) if v == 1]
    outline = unary_union(polys)
    pixel = max(abs(transform.a), abs(transform.e))
    outline = outline.simplify(pixel, preserve_topology=True)
    if outline.is_empty:
        return None
    return _plain(transform_geom(src.crs, EPSG_4326, mapping(outline), precision=precision))


def _plain(geom: Any) -> dict[str, Any]:
    """GeoJSON with lists instead of tuples (what JSON and the STAC validators expect)."""
    def conv(c: Any) -> Any:
        return [conv(v) for v in c] if isinstance(c, (list, tuple)) and c and isinstance(c[0], (list, tuple)) \
            else [float(v) for v in c]

    return {"type": geom["type"], "coordinates": conv(geom["coordinates"])}
