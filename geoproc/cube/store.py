"""A dataset into a Zarr v3 store region by region: the plan, the template and one region.

A region is a block of whole chunks along every chunked dimension: ``time`` (and any other leading
dimension) in steps of its chunk, the spatial dimensions in tiles of about ``region_bytes`` of all the
variables together. Regions never share a chunk, so different workers write them at once, into a
template written first (metadata, coordinates and the variables off the spatial dimensions), as xarray
intends for parallel writers (:mod:`geoproc.raster.regions` does the same for one raster).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..raster.regions import JOB_ATTR, computing, refuse_foreign_store, zarr_options, zarr_target
from ..storage import redact, storage_errors

if TYPE_CHECKING:
    import xarray as xr

SPATIAL_CHUNK = 256
#: what a variable's encoding carries from the source into the store: packing, fill value, time units
KEPT_ENCODING = ("dtype", "scale_factor", "add_offset", "_FillValue", "units", "calendar")


@dataclass(frozen=True)
class CubeRegion:
    """One region: its key in the ledger and its index ranges, by dimension."""

    key: str
    slices: dict[str, tuple[int, int]]


def chunking(ds: xr.Dataset, y: str, x: str, chunks: Mapping[str, int] | None) -> dict[str, int]:
    """The store's chunk per dimension: ``chunks`` where given, else 1 along every other dimension of
    the variables (time = 1) and 256 x 256 spatially; never more than the dimension's size."""
    out: dict[str, int] = {}
    for d, n in ds.sizes.items():
        want = (chunks or {}).get(str(d))
        if want is None:
            want = SPATIAL_CHUNK if d in (y, x) else 1
        out[str(d)] = max(1, min(int(want), int(n)))
    return out


def plan_regions(ds: xr.Dataset, y: str, x: str, chunks: Mapping[str, int], region_bytes: int) -> list[CubeRegion]:
    """Regions of whole chunks covering the variables' dimensions, about ``region_bytes`` each."""
    spatial = [v for v in ds.data_vars.values() if {y, x} <= set(v.dims)]
    dims = [str(d) for d in ds.sizes if any(d in v.dims for v in spatial)]  # the regions' dimensions
    cell = sum(v.dtype.itemsize for v in spatial)
    chunk_bytes = chunks[y] * chunks[x] * max(1, cell)
    k = max(1, math.isqrt(max(1, region_bytes // chunk_bytes)))
    step = {d: chunks[d] for d in dims}
    step[y], step[x] = min(ds.sizes[y], chunks[y] * k), min(ds.sizes[x], chunks[x] * k)
    spatial_bytes = step[y] * step[x] * max(1, cell)
    lead = [d for d in dims if d not in (y, x)]
    if lead and spatial_bytes < region_bytes:  # the whole plane fits: take several steps of the first dim
        d = lead[0]
        step[d] = min(ds.sizes[d], chunks[d] * max(1, region_bytes // spatial_bytes // chunks[d]))
    order = [*lead, y, x]
    ranges = [[(i, min(ds.sizes[d], i + step[d])) for i in range(0, ds.sizes[d], step[d])] for d in order]
    regions = []
    for combo in itertools.product(*[list(enumerate(r)) for r in ranges]):
        key = "_".join(f"{d[0]}{i}" for d, (i, _) in zip(order, combo, strict=True))
        regions.append(CubeRegion(key, {d: span for d, (_, span) in zip(order, combo, strict=True)}))
    return regions


def _region_vars(ds: xr.Dataset, y: str, x: str) -> list[str]:
    return [str(v) for v, da in ds.variables.items() if {y, x} <= set(da.dims) and v not in ds.dims]


def write_template(ds: xr.Dataset, store: str, *, y: str, x: str, chunks: Mapping[str, int], job_id: str,
                   overwrite: bool, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The store's metadata, coordinates and the variables off the spatial dimensions; the spatial
    variables are written by the regions."""
    spatial = _region_vars(ds, y, x)
    refuse_foreign_store(store, job_id, spatial[0] if spatial else "", overwrite, storage_options)
    ds = ds.chunk({d: chunks[str(d)] for d in ds.dims})
    ds.attrs[JOB_ATTR] = job_id
    # the source's packing and fill value, as declared; its compression and chunking are NetCDF's own
    encoding = {v: {**{k: e for k, e in ds[v].encoding.items() if k in KEPT_ENCODING},
                    "chunks": tuple(chunks[str(d)] for d in ds[v].dims)} for v in spatial}
    with storage_errors(store, "write"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes on consolidated metadata and fixed-width strings
        ds.to_zarr(zarr_target(store), mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding,
                   storage_options=zarr_options(store, storage_options))
        others = [str(v) for v in ds.data_vars if v not in spatial]
        if others:  # small: whole, now
            ds[others].load().to_zarr(zarr_target(store), mode="a", zarr_format=3, consolidated=False,
                                      storage_options=zarr_options(store, storage_options))
    return {"store": redact(store), "variables": spatial, "chunks": dict(chunks),
            "sizes": {str(d): int(n) for d, n in ds.sizes.items()}}


def write_region(ds: xr.Dataset, store: str, region: CubeRegion, *, y: str, x: str,
                 storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Read one region of the spatial variables here and write it into the store."""
    spatial = _region_vars(ds, y, x)
    sub = ds[spatial].isel({d: slice(*s) for d, s in region.slices.items()})
    sub = sub.drop_vars([v for v in sub.coords if not set(sub[v].dims) & set(region.slices)])
    with computing(storage_options):
        sub = sub.load()
    with storage_errors(store, "write"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub.to_zarr(zarr_target(store), region={d: slice(*s) for d, s in region.slices.items() if d in sub.dims},
                    zarr_format=3, consolidated=False, storage_options=zarr_options(store, storage_options))
    cells = int(np.prod([s[1] - s[0] for s in region.slices.values()]))
    return {"cells": cells, "bytes": int(sum(v.nbytes for v in sub.data_vars.values()))}
