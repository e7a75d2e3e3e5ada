"""STAC items of Zarr datacubes: one item per store, with the datacube extension.

A Zarr store geoproc writes is one asset; its grid goes into the projection extension (as for a COG)
and its dimensions and variable into ``cube:dimensions`` / ``cube:variables``, so a catalog reader
knows the cube's shape, axes, CRS and chunks without opening the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pystac
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
from pystac.extensions.projection import ProjectionExtension

from ..units import utc_iso
from ..version import __version__
from .footprint import bounds_geometry
from .items import PROCESSING_SCHEMA, crs_fields, geometry_bbox, item_id, parse_datetime

ZARR_MEDIA_TYPE = "application/vnd+zarr"


def create_cube_item(store: str, *, crs: str, transform: Sequence[float], shape: Sequence[int], name: str,
                     dtype: str, bands: Sequence[str] | None, chunks: Sequence[int], nodata: float | str | None,
                     datetime: str, job_id: str | None = None) -> dict[str, Any]:
    """The item of the Zarr store at ``store``: grid, dims (``band``, ``y``, ``x``), the variable ``name``."""
    h, w = int(shape[0]), int(shape[1])
    a, _, c, _, e, f = (float(v) for v in transform[:6])
    bounds = [c, f + e * h, c + a * w, f] if e < 0 else [c, f, c + a * w, f + e * h]
    geometry = bounds_geometry(bounds, crs)
    stem = store.rstrip("/").rsplit("/", 1)[-1]
    item = pystac.Item(id=item_id(stem.removesuffix(".zarr")), geometry=geometry, bbox=geometry_bbox(geometry),
                       datetime=parse_datetime(datetime), properties={"geoproc:datetime_source": "written"})
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    fields = crs_fields(crs)
    proj.code = fields["code"]
    if fields.get("wkt2"):
        proj.wkt2 = fields["wkt2"]
    proj.shape, proj.transform, proj.bbox = [h, w], [float(v) for v in transform[:6]], bounds
    item.add_asset("data", pystac.Asset(href=store, media_type=ZARR_MEDIA_TYPE, roles=["data"]))
    cube = DatacubeExtension.ext(item, add_if_missing=True)
    ref = proj.code or fields.get("wkt2")
    dims = {"x": Dimension({"type": "spatial", "axis": "x", "extent": [bounds[0], bounds[2]], "step": a,
                            "reference_system": ref}),
            "y": Dimension({"type": "spatial", "axis": "y", "extent": [bounds[1], bounds[3]], "step": e,
                            "reference_system": ref})}
    var_dims = ["y", "x"]
    if bands:
        dims = {"band": Dimension({"type": "bands", "values": list(bands)}), **dims}
        var_dims = ["band", "y", "x"]
    cube.dimensions = dims
    cube.variables = {name: Variable({"type": "data", "dimensions": var_dims, "data_type": dtype,
                                      "chunks": [int(v) for v in chunks],
                                      **({"nodata": nodata} if nodata is not None else {})})}
    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties["processing:software"] = {"geoproc": __version__}
    if job_id:
        item.properties["geoproc:job_id"] = job_id
        item.properties["processing:lineage"] = f"geoproc write {job_id}"
    item.properties["updated"] = utc_iso(parse_datetime(datetime))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def create_dataset_item(store: str, ds: Any, *, y: str, x: str, written: str, job_id: str | None = None,
                        job_type: str = "zarr_ingest") -> dict[str, Any]:
    """The item of a datacube store from its (lazily opened) dataset: ``cube:dimensions`` for every
    dimension (spatial ones with extent and step, time with its first and last instant, others with
    their values), ``cube:variables`` with dims, type, unit and chunks, and the time range as the
    item's ``start_datetime`` / ``end_datetime``. The footprint is the coordinates' box, in lon/lat
    for a geographic cube (or one without a CRS whose axes are lat / lon)."""
    import numpy as np

    def step(values: Any) -> float | None:
        return float(values[1] - values[0]) if len(values) > 1 else None

    xs, ys = np.asarray(ds[x].values, dtype="float64"), np.asarray(ds[y].values, dtype="float64")
    dx, dy = abs(step(xs) or 0.0), abs(step(ys) or 0.0)
    bounds = [float(xs.min()) - dx / 2, float(ys.min()) - dy / 2, float(xs.max()) + dx / 2, float(ys.max()) + dy / 2]
    crs = None
    if "spatial_ref" in ds.variables or any("grid_mapping" in ds[v].attrs for v in ds.data_vars):
        try:
            crs = ds.rio.crs
        except Exception:  # noqa: BLE001 - a grid mapping rioxarray cannot read: no CRS then
            crs = None
    geographic = crs.is_geographic if crs is not None else True
    ref = (f"EPSG:{crs.to_epsg()}" if crs is not None and crs.to_epsg() else (crs.to_wkt() if crs is not None
                                                                              else "EPSG:4326"))
    if geographic:
        if bounds[2] > 180.0:  # longitudes past 180 (0..360 grids): said as the whole circle
            bounds[0], bounds[2] = -180.0, 180.0
        bounds = [max(-180.0, bounds[0]), max(-90.0, bounds[1]), min(180.0, bounds[2]), min(90.0, bounds[3])]
    geometry = bounds_geometry(bounds, "EPSG:4326" if geographic else crs.to_wkt())
    stem = store.rstrip("/").rsplit("/", 1)[-1]
    dims: dict[str, Dimension] = {}
    times: list[str] = []
    for d in ds.dims:
        name = str(d)
        if name == x or name == y:
            dims[name] = Dimension({"type": "spatial", "axis": "x" if name == x else "y",
                                    "extent": [bounds[0], bounds[2]] if name == x else [bounds[1], bounds[3]],
                                    "step": step(xs if name == x else ys), "reference_system": ref})
        elif name in ds.variables and ds[name].dtype.kind in "OM":
            vals = ds[name].values
            times = [_iso(vals[0]), _iso(vals[-1])]
            dims[name] = Dimension({"type": "temporal", "extent": times})
        elif name in ds.variables:
            vals = ds[name].values
            dims[name] = Dimension({"type": "other", "extent": [float(vals.min()), float(vals.max())]}
                                   if vals.dtype.kind in "iuf" else {"type": "other", "values": [str(v) for v in vals]})
        else:
            dims[name] = Dimension({"type": "other", "extent": [0, int(ds.sizes[d]) - 1]})
    variables = {}
    for v, da in ds.data_vars.items():
        if not da.dims:
            continue
        spec: dict[str, Any] = {"type": "data", "dimensions": [str(d) for d in da.dims],
                                "data_type": str(da.encoding.get("dtype", da.dtype))}
        if da.attrs.get("units"):
            spec["unit"] = str(da.attrs["units"])
        if da.attrs.get("long_name"):
            spec["description"] = str(da.attrs["long_name"])
        if da.encoding.get("chunks"):
            spec["chunks"] = [int(c) for c in da.encoding["chunks"]]
        variables[str(v)] = Variable(spec)
    when = parse_datetime(written)
    item = pystac.Item(id=item_id(stem.removesuffix(".zarr")), geometry=geometry, bbox=geometry_bbox(geometry),
                       datetime=None if times else when,
                       properties={"start_datetime": times[0], "end_datetime": times[1]} if times else {})
    item.add_asset("data", pystac.Asset(href=store, media_type=ZARR_MEDIA_TYPE, roles=["data"]))
    cube = DatacubeExtension.ext(item, add_if_missing=True)
    cube.dimensions, cube.variables = dims, variables
    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties["processing:software"] = {"geoproc": __version__}
    if job_id:
        item.properties["geoproc:job_id"] = job_id
        item.properties["processing:lineage"] = f"geoproc {job_type} {job_id}"
    item.properties["updated"] = utc_iso(when)
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _iso(value: Any) -> str:
    """An instant as ISO 8601 (numpy datetime64, or a cftime date in any calendar), UTC."""
    import numpy as np

    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="s")) + "Z"
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:" \
           f"{value.second:02d}Z"
