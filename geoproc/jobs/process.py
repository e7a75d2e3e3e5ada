"""process: band math over rasters as a resumable job, from the command line, spec files and batch scripts.

    geoproc run process --set input=scene.tif --set expr="(nir - red) / (nir + red)" --set output=ndvi.tif

It is the ``write`` job with its array described by parameters instead of handed over by Python: the
inputs (``input``, one raster whose bands are named ``b1..bN`` and by their descriptions; or ``inputs``,
a name → URL mapping of one-band rasters), the output grid (``crs`` / ``resolution`` / ``bounds``) and
an expression (:mod:`geoproc.raster.expr`). The driver builds the lazy array to plan (header reads
only); every task builds its own on its worker and computes its region, so the driver never holds a
graph of the whole raster and a task carries a few hundred bytes of parameters.

Stages, handlers and outputs are those of :mod:`.write` (template, regions, finalize; Zarr, one COG or
tiles, with STAC items). The expression is checked before anything runs (``EXPR_*`` codes). The job id
comes from the parameters; every task's fingerprint is the array's content token, so a changed input
makes its regions run again instead of being skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..errors import BANDS_DIFFER, InvalidExpression, InvalidInput
from ..model import ALL_OR_NOTHING, JSON, JobParams, JobType, StageOutput, TaskContext, TaskSpec
from ..raster.expr import Expression
from ..raster.open import open_many, open_one, reproject
from ..storage import resolve_storage_options
from ..storage.urls import Location, canonical
from ..units import ByteSize
from . import write


class Params(JobParams):
    input: Location | None = Field(None, description="one raster; its bands are b1..bN and their descriptions")
    inputs: dict[str, Location] | None = Field(None, description="name -> URL of one-band rasters (instead of input)")
    expr: str = Field(..., min_length=1, max_length=4000,
                      description="band math, e.g. (b4 - b3) / (b4 + b3); ';' separates output bands")
    output: Location = Field(..., description="the .tif URL (cog), a Zarr store (zarr) or a directory (tiles)")
    format: Literal["cog", "zarr", "tiles"] = Field("cog", description="cog, zarr or tiles")
    dtype: str = Field("float32", description="output data type")
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

    @model_validator(mode="after")
    def _one_source(self) -> Params:
        try:  # the syntax and the allow-list now; the names once the inputs are opened
            Expression.parse(self.expr, None)
        except InvalidExpression as exc:
            raise ValueError(f"{exc} [{exc.code}]") from None
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either input (one raster) or inputs (name -> URL), not both or neither")
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs is empty; give name -> URL pairs, e.g. {\"red\": \"a.tif\", \"nir\": \"b.tif\"}")
        return self


def array_of(p: Params | JSON, storage_options: dict | None = None) -> Any:
    """The lazy array the job computes: its inputs opened on one grid, the expression applied."""
    d = p.model_dump() if isinstance(p, Params) else p
    so = resolve_storage_options() if storage_options is None else storage_options
    grid = {"crs": d["crs"], "resolution": d["resolution"], "bounds": d["bounds"]}
    if d.get("input"):
        one = open_one(canonical(d["input"]), masked=True, storage_options=so)
        if any(v is not None for v in grid.values()):
            one = reproject(one, resampling=d["resampling"], **grid)
        names = [str(b) for b in one.band.values]
        values = {f"b{i + 1}": one.isel(band=i, drop=True) for i in range(one.sizes["band"])}
        values.update({n: one.sel(band=n, drop=True) for n in names if n.isidentifier() and n not in values})
        template = one.isel(band=0, drop=True)
    else:
        names = sorted(d["inputs"])
        stack = open_many([canonical(d["inputs"][n]) for n in names], masked=True, storage_options=so,
                          resampling=d["resampling"], **grid)
        if stack.sizes["band"] != 1:
            raise InvalidInput(f"inputs must be one-band rasters; {names[0]} and the others have "
                               f"{stack.sizes['band']} bands (use input= for a multi-band raster)", code=BANDS_DIFFER)
        values = {n: stack.isel(time=i, band=0, drop=True) for i, n in enumerate(names)}
        template = values[names[0]]
    expr = Expression.parse(d["expr"], set(values))
    dtype = np.dtype(d["dtype"])
    nodata = d["nodata"]
    if nodata is None and dtype.kind == "f":
        nodata = float("nan")
    out = expr.evaluate({k: v for k, v in values.items() if k in expr.names}, nodata=nodata)
    if out.dtype != dtype:
        out = out.astype(dtype)
    out.attrs = {}
    out = out.rio.write_crs(template.rio.crs)
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out


def write_params_of(p: Params, storage_options: dict | None = None) -> tuple[write.Params, Any]:
    """The ``write`` parameters of this job and the array (built on the driver to plan)."""
    arr = array_of(p, storage_options)
    return write.write_params(arr, p.output, format=p.format, chunks=p.chunks, region_bytes=int(p.region_bytes),
                              overwrite=p.overwrite, tier=p.tier)


def _with_source(specs: Iterator[TaskSpec], p: Params, token: str) -> Iterator[TaskSpec]:
    """The write's task specs, carrying what a worker needs to rebuild the array, fingerprinted by content."""
    source = p.model_dump(mode="json", include={"input", "inputs", "expr", "dtype", "nodata", "crs", "resolution",
                                                "bounds", "resampling"})
    for spec in specs:
        yield TaskSpec(key=spec.key, params={**spec.params, "source": source}, parent=spec.parent, fingerprint=token)


def plan_template(p: Params, previous: None) -> Iterator[TaskSpec]:
    wp, _ = write_params_of(p)
    yield from _with_source(write.plan_template(wp, None), p, wp.token)


def plan_regions(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    wp, _ = write_params_of(p)
    yield from _with_source(write.plan_regions(wp, previous), p, wp.token)


def plan_finalize(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    wp, _ = write_params_of(p)
    yield from _with_source(write.plan_finalize(wp, previous), p, wp.token)


def template(params: JSON, ctx: TaskContext) -> JSON:
    return write.template(params, ctx, obj=array_of(params["source"], ctx.storage_options))


def region(params: JSON, ctx: TaskContext) -> JSON:
    return write.region(params, ctx, obj=array_of(params["source"], ctx.storage_options))


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    wp, _ = write_params_of(p)
    return {**write.job_result(wp, values), "expr": p.expr}


HANDLERS = {"process.template": template, "process.region": region}

Process = JobType(
    name="process",
    description="Band math over rasters (an expression of their bands) into a COG, Zarr or tiles, one task "
                "per region.",
    params=Params,
    stages=(  # the write job's stages, planned from parameters, run by handlers that build the array
        dataclasses.replace(write.Write.stages[0], handler="process.template", plan=plan_template),
        dataclasses.replace(write.Write.stages[1], handler="process.region", plan=plan_regions),
        dataclasses.replace(write.Write.stages[2], plan=plan_finalize),
    ),
    hash_exclude=frozenset({"overwrite"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
