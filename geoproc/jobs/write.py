"""write: a lazy xarray computation into a Zarr store, region by region, each region a ledger task.

Stages:

1. ``template`` one task writes the store's metadata and coordinates (and refuses a store that another
                job or tool wrote, unless ``overwrite``);
2. ``regions``  one task per region of whole chunks (key ``r{row}c{col}``): the worker computes its
                slice of the array and writes it; its statistics' running counts are the result, and
                the stage merges them;
3. ``finalize`` one task consolidates the metadata; the job result holds the per-band statistics.

The job is named by the computation, not by how it was built: ``token`` is the array's Dask token
(geoproc opens rasters with content-addressed names), so the same cell run twice is the same job and
computes nothing the second time, and after a crash only unwritten regions run. The array itself is
not a parameter: ``geoproc.write`` hands it to the handlers (:func:`handlers_for_array`); a write job
cannot be resumed from the command line, only by calling ``geoproc.write`` again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from affine import Affine
from pydantic import Field

from ..errors import WRITE_NEEDS_ARRAY, InvalidInput
from ..model import (
    ALL_OR_NOTHING,
    JSON,
    JobParams,
    JobType,
    RetryPolicy,
    Stage,
    StageOutput,
    TaskContext,
    TaskSpec,
    only_result,
)
from ..raster import regions as rg
from ..raster.stats import BandStats
from ..storage.urls import Location
from ..units import ByteSize

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

class Params(JobParams):
    token: str = Field(..., min_length=8, description="the Dask token of the computation (set by geoproc.write)")
    output: Location = Field(..., description="URL of the Zarr store to write (local or az://)")
    format: Literal["zarr"] = Field("zarr", description="output format")
    name: str = Field("data", min_length=1, max_length=100, description="name of the array in the store")
    chunks: tuple[int, int] = Field(..., description="Zarr chunk edge (y, x) in pixels")
    region_bytes: ByteSize = Field(ByteSize(rg.REGION_BYTES), ge=2**16,
                                   description="about how much output one region task computes and holds")
    grid: dict[str, Any] = Field(..., description="output grid: crs (WKT), transform, shape [y, x]")
    bands: int = Field(1, ge=1, description="number of bands (1 for a (y, x) array)")
    dtype: str = Field(..., description="data type of the array")
    overwrite: bool = Field(False, description="replace a store this job did not write")

    def geobox(self) -> GeoBox:
        from odc.geo.geobox import GeoBox  # odc-geo: loaded by the planning driver only

        h, w = self.grid["shape"]
        return GeoBox((h, w), Affine(*self.grid["transform"][:6]), self.grid["crs"])


def plan_template(p: Params, previous: None) -> Iterator[TaskSpec]:
    yield TaskSpec(key="template", params={"output": p.output, "name": p.name, "chunks": list(p.chunks),
                                           "overwrite": p.overwrite})


def plan_regions(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    itemsize = np.dtype(p.dtype).itemsize
    for r in rg.plan_regions(p.geobox(), p.chunks, bands=p.bands, itemsize=itemsize, region_bytes=int(p.region_bytes)):
        yield TaskSpec(key=r.key, params={"output": p.output, "name": p.name, "row": r.row, "col": r.col,
                                          "y": list(r.y), "x": list(r.x)})


def plan_finalize(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    yield TaskSpec(key="finalize", params={"output": p.output, "stats": previous.value})


# --- handlers (on workers; the array comes from geoproc.write) ------------------------------------------


def _need(obj: xr.DataArray | None) -> xr.DataArray:
    if obj is None:
        raise InvalidInput("a write job runs from the Python session that holds its array; call "
                           "geoproc.write(array, output) again to resume it.", code=WRITE_NEEDS_ARRAY)
    return obj


def template(params: JSON, ctx: TaskContext, obj: xr.DataArray | None = None) -> JSON:
    return rg.write_template(_need(obj), params["output"], name=params["name"], chunks=tuple(params["chunks"]),
                             job_id=ctx.job_id, overwrite=params["overwrite"], storage_options=ctx.storage_options)


def region(params: JSON, ctx: TaskContext, obj: xr.DataArray | None = None) -> JSON:
    r = rg.Region(params["row"], params["col"], tuple(params["y"]), tuple(params["x"]))
    return rg.write_zarr_region(_need(obj), params["output"], r, name=params["name"],
                                storage_options=ctx.storage_options)


def finalize(params: JSON, ctx: TaskContext) -> JSON:
    rg.finish_store(params["output"], ctx.storage_options)
    stats = params.get("stats")
    band_stats = BandStats.from_json(stats["counts"]).result(stats["pixels"]) if stats else None
    return {"output": params["output"], "band_stats": band_stats}


HANDLERS: dict[str, Callable[..., JSON]] = {"write.template": template, "write.region": region,
                                            "write.finalize": finalize}


def handlers_for_array(obj: xr.DataArray) -> dict[str, Callable[..., JSON]]:
    """The handlers of a write of ``obj``: the array travels with the tasks that compute it."""
    return {"write.template": functools.partial(template, obj=obj), "write.region": functools.partial(region, obj=obj),
            "write.finalize": finalize}


def count_regions(p: Params, results: Iterator[JSON]) -> JSON | None:
    return rg.merge_stats(results)


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    tmpl, stats, final = values
    return {"output": p.output, "format": p.format, "name": p.name, "shape": (tmpl or {}).get("shape"),
            "chunks": (tmpl or {}).get("chunks"), "dtype": p.dtype,
            "band_stats": (final or {}).get("band_stats")}


Write = JobType(
    name="write",
    description="Write a lazy xarray computation into a Zarr store, one task per region (from Python: "
                "geoproc.write).",
    params=Params,
    stages=(
        Stage("template", handler="write.template", plan=plan_template, aggregate=only_result,
              description="write the store's metadata and coordinates"),
        Stage("regions", handler="write.region", plan=plan_regions, aggregate=count_regions, heavy=True,
              retry=RetryPolicy(attempts=3), description="compute and write each region of whole chunks"),
        Stage("finalize", handler="write.finalize", plan=plan_finalize, aggregate=only_result,
              description="consolidate the metadata; the per-band statistics"),
    ),
    hash_exclude=frozenset({"overwrite"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
