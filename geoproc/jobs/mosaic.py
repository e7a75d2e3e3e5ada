"""mosaic: many rasters into one COG (or Zarr store, or tiles) on one grid, one task per region.

    geoproc run mosaic --set input=scenes/ --set output=mosaic.tif
    geoproc run mosaic --set inputs='["a.tif", "b.tif"]' --set overlap=max --set crs=EPSG:3857 --set output=m.tif

The inputs are ``inputs`` (a list, in order); ``input``: a directory / container / prefix (its rasters
sorted by name), or a STAC catalog, collection or ItemCollection file (each item's ``asset``); or
``stac_search``, a pgstac search in the database of ``GEOPROC_PGSTAC_DSN`` (in the order it returns). The grid
is ``crs`` / ``resolution`` / ``bounds``, or derived from the inputs: the first one's CRS and resolution
over the union of their extents, on the first one's pixel lattice, so rasters cut from one grid are
put back without resampling. Inputs in other CRSs or on other lattices are reprojected (``resampling``).
``overlap`` decides where inputs overlap (:mod:`geoproc.raster.mosaic`: first, last, min, max, mean),
nodata-aware.

The driver reads the inputs' headers once, indexes their footprints, and gives each region task only
the inputs that reach it: a task reads only those, one at a time, so memory stays bounded however many
inputs there are. ``geoproc plan mosaic ...`` shows the regions and how many inputs reach each.
Stages, outputs (with a STAC item) and resume are the ``write`` job's (:mod:`.write`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr, model_validator

from ..errors import BANDS_DIFFER, NOTHING_TO_OPEN, InvalidInput
from ..model import ALL_OR_NOTHING, JSON, JobParams, JobType, TaskContext
from ..raster import mosaic as mz
from ..raster import regions as rg
from ..raster.heap import task_memory
from ..raster.open import check_overlap, open_one, target_grid
from ..stac.pgstac import resolve_dsn
from ..stac.publish import SECRET_PARAMS as STAC_SECRET_PARAMS
from ..stac.reading import read_items, search_items
from ..storage import redact, resolve_storage_options
from ..storage.listing import is_directory, list_files
from ..storage.urls import Location, canonical
from ..units import ByteSize
from . import stac_stage, write

if TYPE_CHECKING:
    import xarray as xr

SUFFIXES = (".tif", ".tiff")
REGION_BYTES = 16 * 2**20  # a region holds its output, an accumulator and one input's window at a time


class Params(stac_stage.OutputStacOptions, JobParams):
    inputs: list[Location] | None = Field(None, description="the rasters, in order (first / last count in it)")
    input: Location | None = Field(None, description="a directory / container / prefix (rasters sorted by name), "
                                                     "or a STAC catalog, collection or ItemCollection file")
    suffixes: list[str] = Field(list(SUFFIXES), description="file suffixes listed under input")
    stac_search: dict[str, Any] | None = Field(
        None, description="instead of input: a pgstac search (collections, bbox in lon/lat, datetime) in the "
                          "database of GEOPROC_PGSTAC_DSN")
    asset: str | None = Field(None, description="the STAC asset to mosaic (default: 'data', else the first GeoTIFF)")
    overlap: Literal["first", "last", "min", "max", "mean"] = Field("first", description="where inputs overlap")
    crs: str | None = Field(None, description="output CRS (default: the first input's)")
    resolution: float | None = Field(None, gt=0, description="output resolution in CRS units (default: the first "
                                                             "input's)")
    bounds: tuple[float, float, float, float] | None = Field(None, description="output bounds in the output CRS "
                                                                               "(default: the inputs' union)")
    resampling: str = Field("nearest", description="kernel for inputs not on the output grid's lattice")
    nodata: float | None = Field(None, description="output nodata (default: the first input's; NaN or 0 if none)")
    output: Location = Field(..., description="the .tif URL (cog), a Zarr store (zarr) or a directory (tiles)")
    format: Literal["cog", "zarr", "tiles"] = Field("cog", description="cog, zarr or tiles")
    tier: Literal["analysis", "archive"] = Field("analysis", description="COG compression tier")
    chunks: tuple[int, int] | None = Field(None, description="chunk / block edge (y, x); default 512")
    region_bytes: ByteSize = Field(ByteSize(REGION_BYTES), ge=2**16,
                                   description="about how much output one region task computes and holds")
    overwrite: bool = Field(False, description="replace an output this job did not write")

    _planned: tuple[write.Params, JSON, Any] | None = PrivateAttr(None)  # built once per run by the driver
    _footprints: mz.Footprints | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_source(self) -> Params:
        given = [k for k in ("input", "inputs", "stac_search") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of inputs (a list), input (a directory / prefix / STAC file) or stac_search, "
                             f"not {' and '.join(given) or 'none'}")
        if self.stac_search is not None and set(self.stac_search) - {"collections", "bbox", "datetime"}:
            raise ValueError("stac_search takes collections, bbox (lon/lat) and datetime")
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs is empty; give the rasters to mosaic")
        return self


def files_of(p: Params, storage_options: dict | None) -> list[str]:
    """The rasters to mosaic, in order."""
    if p.inputs is not None:
        return [canonical(u) for u in p.inputs]
    if p.stac_search is not None:  # the DSN comes from the environment: it never reaches the ledger
        found = search_items(resolve_dsn("env"), **p.stac_search)
        if not found:
            raise InvalidInput(f"the pgstac search {p.stac_search} matched no item", code=NOTHING_TO_OPEN)
        return [_asset_href(item, p.asset) for item in found]
    url = canonical(p.input or "")
    if url.lower().endswith(".json"):
        urls = [_asset_href(item, p.asset) for item in read_items(url, storage_options)]
    elif is_directory(url, storage_options):
        files, _ = list_files(url, storage_options, suffixes=p.suffixes)
        urls = sorted(f.url for f in files)
    else:
        urls = [url]
    if not urls:
        raise InvalidInput(f"no rasters to mosaic under {redact(url)}", code=NOTHING_TO_OPEN)
    return urls


def _asset_href(item: JSON, asset: str | None) -> str:
    assets = item.get("assets", {})
    if asset is None:
        asset = "data" if "data" in assets else next(
            (k for k, a in assets.items() if "geotiff" in str(a.get("type", "")).lower()), None)
    if asset not in assets:
        raise InvalidInput(f"STAC item {item.get('id')!r} has no asset {asset!r} (it has {sorted(assets)}); set "
                           "asset=", code=NOTHING_TO_OPEN)
    return canonical(assets[asset]["href"])


def _nodata(p: Params, first: xr.DataArray, dtype: np.dtype) -> float | None:
    if p.nodata is not None:
        return p.nodata
    nd = first.rio.nodata
    if nd is not None and not (isinstance(nd, float) and math.isnan(nd) and dtype.kind != "f"):
        return float(nd)
    return float("nan") if dtype.kind == "f" else 0.0


def planned(p: Params) -> tuple[write.Params, JSON, xr.DataArray]:
    """The write's parameters, what every task carries, and the output's (uncomputed) array; once per run."""
    if p._planned is None:
        from dask.base import tokenize

        so = resolve_storage_options()
        files = files_of(p, so)
        arrays = [open_one(u, storage_options=so) for u in files]  # headers only
        first = arrays[0]
        for url, a in zip(files, arrays, strict=True):
            if a.sizes["band"] != first.sizes["band"]:
                raise InvalidInput(f"{redact(url)} has {a.sizes['band']} bands, {redact(files[0])} has "
                                   f"{first.sizes['band']}; mosaic rasters with the same bands", code=BANDS_DIFFER)
        grid = target_grid(arrays, crs=p.crs, resolution=p.resolution, bounds=p.bounds)
        check_overlap(arrays, grid)
        dtype = np.result_type(*[a.dtype for a in arrays])
        nodata = _nodata(p, first, dtype)
        names = [str(b) for b in first.band.values]
        token = tokenize([a.data.name for a in arrays], grid, p.overlap, p.resampling, dtype.name, nodata)
        size = p.chunks or (512, 512)
        arr = rg.blank(grid, bands=names, dtype=dtype, nodata=nodata, name=f"mosaic-{token}", chunks=size)
        wp, arr = write.write_params(arr, p.output, format=p.format, chunks=p.chunks, region_bytes=int(p.region_bytes),
                                     overwrite=p.overwrite, tier=p.tier)
        source = {"files": files, "overlap": p.overlap, "resampling": p.resampling, "dtype": dtype.name,
                  "nodata": write.nodata_param(nodata), "bands": names, "grid": wp.grid,
                  "chunks": list(wp.chunks), "name": f"mosaic-{token}"}
        p._footprints = mz.Footprints(arrays, grid.crs)
        p._planned = (wp, source, arr)
    return p._planned


def contributors(p: Params, task: JSON, source: JSON) -> JSON:
    """A region task's source: only the inputs whose footprints reach the region, in order."""
    wp, _, _ = planned(p)
    assert p._footprints is not None
    hits = p._footprints.within(mz.region_bbox(wp.geobox(), task["y"], task["x"]))
    return {**{k: v for k, v in source.items() if k != "files"}, "urls": [source["files"][i] for i in hits]}


def _nodata_of(source: JSON) -> float | None:
    nd = source["nodata"]
    return None if nd is None else float(nd)


def array_of(source: JSON, storage_options: dict | None = None) -> xr.DataArray:
    """The output's uncomputed array (its grid, bands, dtype, nodata), rebuilt from the task's source."""
    return rg.blank(write.geobox_of(source["grid"]), bands=source["bands"], dtype=source["dtype"], nodata=_nodata_of(source),
                    name=source["name"], chunks=tuple(source["chunks"]))


def region(params: JSON, ctx: TaskContext) -> JSON:
    """Mosaic one region from the inputs that reach it, and write it."""
    source = params["source"]
    grid = write.geobox_of(source["grid"])[slice(*params["y"]), slice(*params["x"])]
    with task_memory():
        data = mz.mosaic_region(source["urls"], grid, bands=len(source["bands"]), overlap=source["overlap"],
                                dtype=source["dtype"], nodata=_nodata_of(source), resampling=source["resampling"],
                                storage_options=ctx.storage_options)
    return write.region(params, ctx, obj=array_of(source), data=data)


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    wp, source, _ = planned(p)
    return {**write.job_result(wp, values), "inputs": len(source["files"]), "overlap": p.overlap}


HANDLERS = {**write.derived_handlers("mosaic", array_of), "mosaic.region": region}

Mosaic = JobType(
    name="mosaic",
    description="Many rasters into one COG, Zarr or tiles on one grid (reprojected, overlap rules), one task per "
                "region reading only the inputs that reach it.",
    params=Params,
    stages=(*write.derived_stages("mosaic", planned, regional=contributors), stac_stage.OUTPUT_STAGE),
    secret_params=STAC_SECRET_PARAMS,
    hash_exclude=frozenset({"overwrite"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
