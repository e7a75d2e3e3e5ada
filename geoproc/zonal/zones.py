"""Zones: a polygon layer read, checked, brought into the raster's CRS and cut into batches by location.

A zone layer (GeoPackage, Shapefile, GeoJSON, GeoParquet) is read with pyogrio through geopandas. It must
say its CRS, or ``zones_crs`` must; it is reprojected to the raster's CRS (exactextract does not: it
only warns). Invalid geometries are repaired (``shapely.make_valid``, keeping the polygonal parts) or
reported, as ``invalid`` says. Every zone gets the id of ``zone_id`` (a column whose values are unique)
or its position in the layer.

Zones can also be made rather than read: a regular grid of square cells over the raster
(:func:`grid_zones`), or the H3 cells that cover a lon/lat box (:func:`h3_zones`).

Zones are ordered along a Hilbert curve of their centres and cut into batches of ``batch`` zones: a
batch's zones lie together, so its task reads one neighbourhood of the raster and GDAL's block cache
serves the zones that share blocks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ZONES_INVALID, ZONES_NO_CRS, ZONES_OUTSIDE, ZONES_UNREADABLE, InvalidInput
from ..storage import is_local, local_copy, local_path, redact, storage_errors

if TYPE_CHECKING:
    import geopandas as gpd

ID = "zone"  # the id column of a layer without zone_id: the feature's position
ORDER = "__order"  # the zone's position in the layer, kept to give the table back in the layer's order


def read_layer(url: str, *, layer: str | None = None, storage_options: Mapping[str, Any] | None = None,
               workdir: str | None = None) -> gpd.GeoDataFrame:
    """The layer at ``url`` (a remote single-file layer is copied into ``workdir`` first)."""
    import geopandas as gpd

    path = local_path(url) if is_local(url) else None
    if path is None:
        with storage_errors(url, "read"):
            path = local_copy(url, workdir or ".", storage_options)
    if is_local(url) and not os.path.exists(path):
        raise InvalidInput(f"zone layer {redact(url)} does not exist", code=ZONES_UNREADABLE)
    try:
        if path.lower().endswith((".parquet", ".geoparquet")):
            return gpd.read_parquet(path)
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - pyogrio, GDAL and pyarrow each raise their own
        raise InvalidInput(f"zone layer {redact(url)} cannot be read: {type(exc).__name__}: {str(exc)[:300]}",
                           code=ZONES_UNREADABLE) from None


def prepare(gdf: gpd.GeoDataFrame, *, raster_crs: Any, raster_bounds: tuple[float, float, float, float],
            zone_id: str | None, zones_crs: str | None, invalid: str, where: str) -> gpd.GeoDataFrame:
    """The zones with their ids, valid, in the raster's CRS, ordered by location (Hilbert curve)."""
    import shapely
    from shapely.geometry import box

    if gdf.crs is None:
        if zones_crs is None:
            raise InvalidInput(f"zone layer {where} has no CRS; give zones_crs (e.g. EPSG:4326) to say which it is",
                               code=ZONES_NO_CRS)
        gdf = gdf.set_crs(zones_crs)
    if zone_id is not None:
        if zone_id not in gdf.columns:
            raise InvalidInput(f"zone layer {where} has no column {zone_id!r} (it has {', '.join(map(str, gdf.columns))})",
                               code=ZONES_INVALID)
        if gdf[zone_id].duplicated().any():
            dup = gdf[zone_id][gdf[zone_id].duplicated()].iloc[0]
            raise InvalidInput(f"zone_id {zone_id!r} is not unique in {where} ({dup!r} repeats); choose a unique "
                               "column or leave zone_id out to number the zones", code=ZONES_INVALID)
        ids = gdf[zone_id]
    else:
        ids = np.arange(len(gdf))
    out = gdf[[gdf.geometry.name]]
    if out.geometry.name != "geometry":
        out = out.rename_geometry("geometry")
    out = out.assign(**{zone_id or ID: ids, ORDER: np.arange(len(gdf))})
    bad = ~out.geometry.is_valid & out.geometry.notna()
    if bad.any():
        if invalid == "report":
            which = ", ".join(map(str, out.loc[bad, zone_id or ID].iloc[:5]))
            raise InvalidInput(f"{int(bad.sum())} invalid geometries in {where} (zones {which}); fix them, or set "
                               "invalid=repair", code=ZONES_INVALID)
        repaired = shapely.make_valid(out.geometry[bad].values)
        out.loc[bad, "geometry"] = [_polygonal(g) for g in repaired]
    out = out.to_crs(raster_crs)
    inside = out.geometry.intersects(box(*raster_bounds))
    if len(out) and not inside.any():
        b = out.total_bounds
        raise InvalidInput(f"no zone of {where} overlaps the raster (zones span {b[0]:g}, {b[1]:g}, {b[2]:g}, {b[3]:g} "
                           f"in the raster's CRS; the raster {', '.join(f'{v:g}' for v in raster_bounds)})",
                           code=ZONES_OUTSIDE)
    if len(out) > 1:
        centres = out.geometry.representative_point()
        key = centres.hilbert_distance(total_bounds=raster_bounds) if not centres.is_empty.any() else out[ORDER]
        out = out.iloc[np.argsort(np.asarray(key), kind="stable")]
    return out.reset_index(drop=True)


def _polygonal(geom: Any) -> Any:
    """The polygonal part of a repaired geometry (make_valid can add lines and points)."""
    from shapely.geometry import MultiPolygon, Polygon

    if geom is None or isinstance(geom, Polygon | MultiPolygon):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    parts = [p for g in polys for p in (g.geoms if isinstance(g, MultiPolygon) else [g])]
    return MultiPolygon(parts) if parts else None


#: the most zones geoproc makes for a grid or an H3 cover (a table of that many rows is already large)
MAX_MADE = 5_000_000


def grid_zones(bounds: tuple[float, float, float, float], crs: Any, size: float, origin: tuple[float, float]) -> \
        gpd.GeoDataFrame:
    """Square cells of ``size`` (CRS units) covering ``bounds``, on the lattice through ``origin`` (the
    raster's corner), with ids ``r{row}c{col}`` counted from the top-left."""
    import geopandas as gpd
    import shapely

    left, bottom, right, top = bounds
    x0, y0 = origin
    c0, c1 = int(np.floor((left - x0) / size + 1e-9)), int(np.ceil((right - x0) / size - 1e-9))
    r0, r1 = int(np.floor((y0 - top) / size + 1e-9)), int(np.ceil((y0 - bottom) / size - 1e-9))
    n = (r1 - r0) * (c1 - c0)
    if n > MAX_MADE:
        raise InvalidInput(f"grid={size:g} gives {n:,} cells over the raster (more than {MAX_MADE:,}); choose a "
                           "larger cell", code=ZONES_INVALID)
    rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    xmin, ymax = x0 + cols * size, y0 - rows * size
    geoms = shapely.box(xmin, ymax - size, xmin + size, ymax)
    ids = [f"r{r - r0}c{c - c0}" for r, c in zip(rows, cols, strict=True)]
    return gpd.GeoDataFrame({"cell": ids}, geometry=geoms, crs=crs)


def h3_zones(bounds: tuple[float, float, float, float], resolution: int) -> gpd.GeoDataFrame:
    """The H3 cells of ``resolution`` that cover the lon/lat box ``bounds`` (every cell the box overlaps),
    as EPSG:4326 polygons with their H3 index as id."""
    import geopandas as gpd
    import h3
    from shapely.geometry import Polygon, box, mapping

    from ..errors import H3_RESOLUTION

    west, south, east, north = bounds
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidInput(f"bounds={list(bounds)} is not a lon/lat box (west, south, east, north)", code=H3_RESOLUTION)
    area_km2 = (east - west) * (north - south) * 111.32**2 * max(0.05, np.cos(np.radians((north + south) / 2)))
    estimate = area_km2 / h3.average_hexagon_area(resolution, "km^2")
    if estimate > MAX_MADE:
        raise InvalidInput(f"h3_resolution={resolution} gives about {estimate:,.0f} cells over {list(bounds)} (more "
                           f"than {MAX_MADE:,}); choose a coarser resolution or smaller bounds", code=H3_RESOLUTION)
    shape = h3.geo_to_h3shape(mapping(box(west, south, east, north)))
    cells = sorted(h3.h3shape_to_cells_experimental(shape, resolution, contain="overlap"))
    geoms = [Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    return gpd.GeoDataFrame({"h3": cells}, geometry=geoms, crs="EPSG:4326")
