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
