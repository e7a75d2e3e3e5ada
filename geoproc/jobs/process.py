"""process: band math or a user's function over rasters as a resumable job, from the command line, spec
files and batch scripts.

    geoproc run process --set input=scene.tif --set expr="(nir - red) / (nir + red)" --set output=ndvi.tif
    geoproc run process --set input=dem.tif --set function=filters.py:focal_mean --set halo=1 --set output=f.tif

It is the ``write`` job with its array described by parameters instead of handed over by Python: the
inputs (``input``, one raster whose bands are named ``b1..bN`` and by their descriptions; or ``inputs``,
a name → URL mapping of one-band rasters), the output grid (``crs`` / ``resolution`` / ``bounds``) and
either an expression (:mod:`geoproc.raster.expr`) or a function (:mod:`geoproc.raster.functions`),
called on each region with ``halo`` pixels of context. The driver builds the lazy array to plan
(header reads only; a function is also called once on a small window, to learn its bands and dtype and
to fail before anything runs); every task builds its own on its worker and computes its region, so the
driver never holds a graph of the whole raster and a task carries a few hundred bytes of parameters.

Stages, handlers and outputs are those of :mod:`.write` (template, regions, finalize; Zarr, one COG or
tiles, with STAC items). The job id comes from the parameters; every task's fingerprint is the
computation's content token (the inputs' contents, and a function's source file), so a changed input
or an edited function makes the regions run again instead of being skipped.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..errors import BANDS_DIFFER, GRIDS_DIFFER, InvalidExpression, InvalidInput
from ..model import ALL_OR_NOTHING, JSON, JobParams, JobType, TaskContext
from ..raster import functions as fns
from ..raster import regions as rg
from ..raster.expr import Expression
from ..raster.heap import task_memory
from ..raster.open import open_many, open_one, reproject
from ..stac.publish import SECRET_PARAMS as STAC_SECRET_PARAMS
from ..storage import resolve_storage_options
from ..storage.urls import Location, canonical
from ..units import ByteSize
from . import stac_stage, write

if TYPE_CHECKING:
    import xarray as xr

#: edge of the window a function is first called on, in the driver (its bands and dtype, an early failure)
PROBE = 64
#: what a task needs to rebuild the array (and the function's first result, so workers do not probe)
SOURCE = {"input", "inputs", "expr", "function", "halo", "dtype", "nodata", "crs", "resolution", "bounds",
          "resampling"}


class Params(stac_stage.OutputStacOptions, JobParams):
    input: Location | None = Field(None, description="one raster; its bands are b1..bN and their descriptions")
    inputs: dict[str, Location] | None = Field(None, description="name -> URL of one-band rasters (instead of input)")
    expr: str | None = Field(None, min_length=1, max_length=4000,
                             description="band math, e.g. (b4 - b3) / (b4 + b3); ';' separates output bands")
    function: str | None = Field(None, min_length=3, max_length=1000,
                                 description="module:callable or file.py:callable, fn(ds: Dataset) -> DataArray "
                                             "| Dataset, called on each region and its halo")
    halo: int = Field(0, ge=0, le=4096, description="pixels of context a function sees around each region")
    output: Location = Field(..., description="the .tif URL (cog), a Zarr store (zarr) or a directory (tiles)")
    format: Literal["cog", "zarr", "tiles"] = Field("cog", description="cog, zarr or tiles")
    dtype: str | None = Field(None, description="output data type (default: float32 for an expression, the "
                                                "function's own)")
    nodata: float | None = Field(None, description="output nodata (default: NaN for floats, none for integers)")
    crs: str | None = Field(None, description="output CRS (default: the first input's)")
    resolution: float | None = Field(None, gt=0, description="output resolution in CRS units")
    bounds: tuple[float, float, float, float] | None = Field(None, description="output bounds in the output CRS")
    resampling: str = Field("nearest", description="kernel when an input is reprojected onto the grid")
    tier: Literal["analysis", "archive"] = Field("analysis", description="COG compression tier")
    chunks: tuple[int, int] | None = Field(None, description="chunk / block edge (y, x); default 512 for COGs")
    region_bytes: ByteSize = Field(ByteSize(write.rg.REGION_BYTES), ge=2**16,
                                   description="about how much output one region task computes and holds")
    overwrite: bool = Field(False, description="replace an output this job did not write")

    _planned: tuple[write.Params, JSON, Any] | None = PrivateAttr(None)  # built once per run by the driver

    @field_validator("function")
    @classmethod
    def _function_file_absolute(cls, v: str | None) -> str | None:
        """A function file is named by its absolute path: the job must not depend on the directory it
        was started from (the job id, and where the workers look)."""
        if v is None:
            return v
        module, sep, name = v.strip().rpartition(":")
        return f"{os.path.abspath(os.path.expanduser(module))}:{name}" if sep and module.endswith(".py") else v.strip()

    @model_validator(mode="after")
    def _one_source(self) -> Params:
        if (self.expr is None) == (self.function is None):
            raise ValueError("give either expr (band math) or function (module:callable), not both or neither")
        try:  # the syntax and the allow-list now; the names once the inputs are opened
            if self.expr is not None:
                Expression.parse(self.expr, None)
            else:
                fns.Function.parse(self.function or "")
        except (InvalidExpression, InvalidInput) as exc:
            raise ValueError(f"{exc} [{exc.code}]") from None
        if self.halo and self.function is None:
            raise ValueError("halo applies to a function; an expression works pixel by pixel")
        if self.dtype is not None:
            try:
                np.dtype(self.dtype)
            except TypeError:
                raise ValueError(f"dtype={self.dtype!r} is not a data type (uint8, int16, float32, ...)") from None
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either input (one raster) or inputs (name -> URL), not both or neither")
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs is empty; give name -> URL pairs, e.g. {\"red\": \"a.tif\", \"nir\": \"b.tif\"}")
        return self


def inputs_of(d: JSON, storage_options: dict | None) -> tuple[dict[str, xr.DataArray], xr.DataArray]:
    """The inputs on one grid as named lazy ``(y, x)`` arrays, and the first of them (the grid's template)."""
    grid = {"crs": d["crs"], "resolution": d["resolution"], "bounds": d["bounds"]}
    if d.get("input"):
        one = open_one(canonical(d["input"]), masked=True, storage_options=storage_options)
        if any(v is not None for v in grid.values()):
            one = reproject(one, resampling=d["resampling"], **grid)
        names = [str(b) for b in one.band.values]
        values = {f"b{i + 1}": one.isel(band=i, drop=True) for i in range(one.sizes["band"])}
        values.update({n: one.sel(band=n, drop=True) for n in names if n.isidentifier() and n not in values})
        return values, one.isel(band=0, drop=True)
    names = sorted(d["inputs"])
    if all(v is None for v in grid.values()):
        _same_grid({n: canonical(d["inputs"][n]) for n in names}, storage_options)
    stack = open_many([canonical(d["inputs"][n]) for n in names], masked=True, storage_options=storage_options,
                      resampling=d["resampling"], **grid)
    if stack.sizes["band"] != 1:
        raise InvalidInput(f"inputs must be one-band rasters; {names[0]} and the others have "
                           f"{stack.sizes['band']} bands (use input= for a multi-band raster)", code=BANDS_DIFFER)
    values = {n: stack.isel(time=i, band=0, drop=True) for i, n in enumerate(names)}
    return values, values[names[0]]


def _same_grid(urls: dict[str, str], storage_options: dict | None) -> None:
    """Refuse inputs on different grids when no output grid says onto which to bring them."""
    first, *rest = urls
    grid = open_one(urls[first], storage_options=storage_options).odc.geobox
    for name in rest:
        other = open_one(urls[name], storage_options=storage_options).odc.geobox
        if other != grid:
            raise InvalidInput(f"inputs {first!r} and {name!r} are on different grids ({grid.crs}, {grid.shape.x} x "
                               f"{grid.shape.y} px at {grid.resolution.x:g} and {other.crs}, {other.shape.x} x "
                               f"{other.shape.y} px at {other.resolution.x:g}); give the output grid with crs=, "
                               "resolution= or bounds=", code=GRIDS_DIFFER)


def _nodata(d: JSON, dtype: np.dtype) -> float | None:
    return float("nan") if d["nodata"] is None and dtype.kind == "f" else d["nodata"]


def _on_grid(out: xr.DataArray, template: xr.DataArray, nodata: float | None) -> xr.DataArray:
    out.attrs = {}
    out = out.rio.write_crs(template.rio.crs)
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out


def array_of(d: JSON, storage_options: dict | None = None) -> xr.DataArray:
    """The lazy array the job computes: its inputs opened on one grid, the expression applied; for a
    function, an uncomputed array of its output's grid, bands and dtype (regions run the function)."""
    so = resolve_storage_options() if storage_options is None else storage_options
    values, template = inputs_of(d, so)
    if d.get("function"):
        return _function_array(d, values, template, so)
    expr = Expression.parse(d["expr"], set(values))
    dtype = np.dtype(d["dtype"] or "float32")
    nodata = _nodata(d, dtype)
    out = expr.evaluate({k: v for k, v in values.items() if k in expr.names}, nodata=nodata)
    if out.dtype != dtype:
        out = out.astype(dtype)
    return _on_grid(out, template, nodata)


def _first_result(d: JSON, values: dict[str, xr.DataArray], template: xr.DataArray, so: dict) -> fns.Shape:
    """The function's bands and dtype: called in the driver on a small window of the inputs."""
    import xarray as xr

    if d.get("result"):
        return fns.Shape(**d["result"])
    fn = fns.Function.parse(d["function"]).load()
    h, w = min(PROBE, template.sizes["y"]), min(PROBE, template.sizes["x"])
    window = xr.Dataset(values).isel(y=slice(0, h), x=slice(0, w))
    with rg.computing(so):
        window = window.compute()
    out = fns.apply(fn, window, where=f"the first {h} x {w} pixels", spec=d["function"])
    return fns.shape_of(out)


def _function_array(d: JSON, values: dict[str, xr.DataArray], template: xr.DataArray, so: dict) -> xr.DataArray:
    from dask.base import tokenize

    shape = _first_result(d, values, template, so)
    dtype = np.dtype(d["dtype"] or shape.dtype)
    token = tokenize(sorted((k, v.data.name) for k, v in values.items()), fns.Function.parse(d["function"]).token(),
                     d["halo"], shape, dtype.name)
    ychunks, xchunks = template.chunks
    return rg.blank(template.odc.geobox, bands=shape.bands, dtype=dtype, nodata=_nodata(d, dtype),
                    name=f"process-{token}", chunks=(ychunks[0], xchunks[0]))


def run_function(d: JSON, params: JSON, key: str, so: dict) -> tuple[xr.DataArray, np.ndarray]:
    """One region of a function's output: the inputs over the region and its halo, computed here, the
    function called, its result checked and its halo cut off. Returns the output array and the pixels."""
    import xarray as xr

    values, template = inputs_of(d, so)
    out = _function_array(d, values, template, so)
    spec = d["function"]
    fn = fns.Function.parse(spec).load()
    (y0, y1), (x0, x1) = params["y"], params["x"]
    ys = fns.grow((y0, y1), d["halo"], template.sizes["y"])
    xs = fns.grow((x0, x1), d["halo"], template.sizes["x"])
    window = xr.Dataset(values).isel(y=slice(*ys), x=slice(*xs))
    with rg.computing(so):
        window = window.compute()
    where = fns.describe({"key": key, "y": (y0, y1), "x": (x0, x1)})
    result = fns.apply(fn, window, where=where, spec=spec)
    result = result.isel(y=slice(y0 - ys[0], y1 - ys[0]), x=slice(x0 - xs[0], x1 - xs[0]))
    return out, fns.conform(result, fns.Shape(**d["result"]), out.dtype, where=where, spec=spec)


def planned(p: Params) -> tuple[write.Params, JSON, xr.DataArray]:
    """The ``write`` parameters of this job, what its tasks carry to rebuild the array, and the array
    (built once per run, in the driver)."""
    if p._planned is None:
        so = resolve_storage_options()
        source = p.model_dump(mode="json", include=SOURCE)
        arr = array_of(source, so)
        if p.function:
            bands = [str(b) for b in arr.band.values] if "band" in arr.dims else None
            source["result"] = {"bands": bands, "dtype": arr.dtype.name}
        wp, arr = write.write_params(arr, p.output, format=p.format, chunks=p.chunks,
                                     region_bytes=int(p.region_bytes), overwrite=p.overwrite, tier=p.tier)
        p._planned = (wp, source, arr)
    return p._planned


def region(params: JSON, ctx: TaskContext) -> JSON:
    """A region of band math (the write's), or of a function: run here on the region and its halo."""
    source, so = params["source"], ctx.storage_options
    if not source.get("function"):
        return write.region(params, ctx, obj=array_of(source, so))
    with task_memory():
        out, data = run_function(source, params, ctx.key, so)
    return write.region(params, ctx, obj=out, data=data)


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    wp, _, _ = planned(p)
    return {**write.job_result(wp, values), **({"expr": p.expr} if p.expr else {"function": p.function})}


HANDLERS = {**write.derived_handlers("process", array_of), "process.region": region}

Process = JobType(
    name="process",
    description="Band math or a function of your own over rasters into a COG, Zarr or tiles, one task per "
                "region.",
    params=Params,
    stages=(*write.derived_stages("process", planned), stac_stage.OUTPUT_STAGE),
    secret_params=STAC_SECRET_PARAMS,
    hash_exclude=frozenset({"overwrite"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
