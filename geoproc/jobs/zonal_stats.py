"""zonal_stats: statistics of a raster over polygons, exact, in parallel, one ledger task per batch of zones.

    geoproc run zonal_stats --set input=dem.tif --set zones=cantons.gpkg --set zone_id=NAME_2 \
        --set stats='["mean", "min", "max"]' --set output=cantons.parquet
    geoproc run zonal_stats --set input=dem.tif --set h3_resolution=7 --set output=h3.parquet
    geoproc run zonal_stats --set input=dem.tif --set grid=1000 --set coverage=centre --set output=grid.csv

The zones are a polygon layer, a regular grid of ``grid``-sized cells over the raster (ids ``r{row}c{col}``),
or the H3 cells of ``h3_resolution`` covering ``bounds`` (ids: the H3 indexes).

Stages:

1. ``zones``  one task reads the zone layer, checks it (CRS, ids, geometries; :mod:`geoproc.zonal.zones`),
              brings it into the raster's CRS, orders the zones along a Hilbert curve and writes them as
              one staging GeoParquet whose row groups are the batches;
2. ``batches`` one task per batch of ``batch`` zones (key ``b{n}``): reads its row group and computes its
              zones' statistics (:mod:`geoproc.zonal.stats`; exactextract for ``coverage=exact``) into a
              Parquet part;
3. ``table``  one task joins the parts in the layer's order into ``output`` (Parquet, or CSV by its
              extension; GeoParquet with the zones' geometry in the layer's CRS when ``geometry=true``),
              publishes it atomically and removes the staging files.

The job id comes from the parameters; every task's fingerprint from the raster's and the layer's
versions, so a changed input recomputes. After a crash only the batches not recorded run.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, model_validator

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
    WrittenFile,
    only_result,
)
from ..raster.heap import task_memory
from ..storage import join, open_fs, publish, redact, remove_tree, sha256_file, storage_errors, version_of
from ..storage.urls import Location
from ..zonal import stats as zs
from ..zonal import zones as zn

Stat = Literal["count", "sum", "mean", "min", "max", "std", "median", "majority"]


class Params(JobParams):
    input: Location = Field(..., description="the raster (every band gets its columns)")
    zones: Location | None = Field(None, description="a polygon layer: GeoPackage, Shapefile, GeoJSON or GeoParquet")
    grid: float | None = Field(None, gt=0, description="instead of zones: square cells of this size (raster CRS "
                                                       "units) over the raster")
    h3_resolution: int | None = Field(None, description="instead of zones: the H3 cells (0..15) covering bounds")
    bounds: tuple[float, float, float, float] | None = Field(
        None, description="lon/lat box (west, south, east, north) of the H3 cells; default: the raster's")
    layer: str | None = Field(None, description="the layer of a multi-layer file (GeoPackage)")
    zone_id: str | None = Field(None, description="the column naming each zone (unique); default: its position")
    zones_crs: str | None = Field(None, description="the layer's CRS when the file does not say it")
    invalid: Literal["repair", "report"] = Field("repair", description="invalid geometries: repair or refuse")
    stats: list[Stat] = Field(["count", "mean"], min_length=1, description="count, sum, mean, min, max, std, "
                                                                           "median, majority")
    coverage: Literal["exact", "centre", "all_touched"] = Field(
        "exact", description="exact (fraction of each cell covered, as exactextract), centre or all_touched")
    batch: int = Field(500, ge=1, le=1_000_000, description="zones per task")
    output: Location = Field(..., description="the table: .parquet or .csv")
    geometry: bool = Field(False, description="write the zones' geometry too (GeoParquet)")

    @model_validator(mode="after")
    def _table(self) -> Params:
        given = [k for k in ("zones", "grid", "h3_resolution") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of zones (a polygon layer), grid (a cell size) or h3_resolution, "
                             f"not {' and '.join(given) or 'none'}")
        if self.h3_resolution is not None and not 0 <= self.h3_resolution <= 15:
            raise ValueError(f"h3_resolution={self.h3_resolution} is out of range: H3 resolutions go from 0 (cells "
                             "of 4.4 million km²) to 15 (under 1 m²) [H3_RESOLUTION]")
        if self.bounds is not None and self.h3_resolution is None:
            raise ValueError("bounds is the lon/lat box of the H3 cells; give it with h3_resolution")
        if not self.output.lower().endswith((".parquet", ".csv")):
            raise ValueError(f"output={self.output!r}: the table is a .parquet or a .csv file")
        if self.geometry and not self.output.lower().endswith(".parquet"):
            raise ValueError("geometry=true needs a .parquet output (GeoParquet)")
        if len(set(self.stats)) != len(self.stats):
            raise ValueError("stats lists a statistic twice")
        return self

    def staging(self) -> str:
        """Where the prepared zones and the parts wait for the table (removed once it is published)."""
        stem = posixpath.splitext(posixpath.basename(self.output))[0]
        return join(posixpath.dirname(self.output), f".{stem}.zonal")

    def id_col(self) -> str:
        if self.grid is not None:
            return "cell"
        if self.h3_resolution is not None:
            return "h3"
        return self.zone_id or zn.ID


def _fingerprint(p: Params) -> str:
    from dask.base import tokenize

    return tokenize(version_of(p.input), version_of(p.zones) if p.zones else None)


def plan_zones(p: Params, previous: None) -> Iterator[TaskSpec]:
    yield TaskSpec(key="zones", fingerprint=_fingerprint(p), params={
        "input": p.input, "zones": p.zones, "layer": p.layer, "zone_id": p.zone_id, "zones_crs": p.zones_crs,
        "grid": p.grid, "h3_resolution": p.h3_resolution, "bounds": p.bounds, "invalid": p.invalid,
        "batch": p.batch, "staging": join(p.staging(), "zones.parquet")})


def plan_batches(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    prepared = previous.value or {}
    token = _fingerprint(p)
    for i in range(prepared.get("batches", 0)):
        yield TaskSpec(key=f"b{i:05d}", fingerprint=token, params={
            "input": p.input, "zones": prepared["staging"], "row_group": i, "id_col": p.id_col(), "stats": p.stats,
            "coverage": p.coverage, "part": join(p.staging(), "parts", f"b{i:05d}.parquet")})


def plan_table(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    parts = [r["part"] for r in previous.results()]
    yield TaskSpec(key="table", fingerprint=_fingerprint(p), params={
        "output": p.output, "parts": parts, "staging": p.staging(), "geometry": p.geometry, "id_col": p.id_col()})


# --- handlers ---------------------------------------------------------------------------------------------


def _raster_frame(url: str, ctx: TaskContext) -> tuple[Any, tuple[float, float, float, float], Any]:
    import rasterio

    from ..storage import gdal_env, gdal_path

    with rasterio.Env(**gdal_env(url, ctx.storage_options)), rasterio.open(gdal_path(url)) as src:
        return src.crs, tuple(src.bounds), src.transform


def _made_zones(params: JSON, crs: Any, bounds: tuple[float, float, float, float], transform: Any) -> Any:
    """A grid over the raster, or the H3 cells over ``bounds`` (default: the raster's, in lon/lat)."""
    from rasterio.warp import transform_bounds

    if params["grid"] is not None:
        return zn.grid_zones(bounds, crs, params["grid"], (transform.c, transform.f))
    box = params["bounds"] or transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    return zn.h3_zones(tuple(box), params["h3_resolution"])


def zones(params: JSON, ctx: TaskContext) -> JSON:
    """Read (or make), check, reproject and order the zones; write them as the staging GeoParquet."""
    crs, bounds, transform = _raster_frame(params["input"], ctx)
    with tempfile.TemporaryDirectory(prefix="geoproc-zones-") as tmp:
        if params["zones"] is None:
            layer = _made_zones(params, crs, bounds, transform)
            zone_id, where = ("cell" if params["grid"] is not None else "h3"), "the made zones"
        else:
            layer = zn.read_layer(params["zones"], layer=params["layer"], storage_options=ctx.storage_options,
                                  workdir=tmp)
            zone_id, where = params["zone_id"], redact(params["zones"])
        source_crs = (layer.crs or params["zones_crs"])
        prepared = zn.prepare(layer, raster_crs=crs, raster_bounds=bounds, zone_id=zone_id,
                              zones_crs=params["zones_crs"], invalid=params["invalid"], where=where)
        # the geometry as the layer gave it, for a GeoParquet output in the layer's own CRS
        original = layer.geometry.set_crs(source_crs, allow_override=True).iloc[prepared[zn.ORDER].to_numpy()]
        prepared["source_wkb"] = original.to_wkb().to_numpy()
        local = os.path.join(tmp, "zones.parquet")
        prepared.to_parquet(local, row_group_size=params["batch"], index=False)
        publish(local, params["staging"], ctx.storage_options, move=True)
        crs_file = os.path.join(tmp, "source_crs.wkt")
        with open(crs_file, "w") as f:
            f.write(original.crs.to_wkt())
        publish(crs_file, posixpath.join(posixpath.dirname(params["staging"]), "source_crs.wkt"), ctx.storage_options,
                move=True)
    n = len(prepared)
    return {"zones": n, "batches": -(-n // params["batch"]) if n else 0, "staging": redact(params["staging"])}


def _read_row_group(url: str, i: int, ctx: TaskContext) -> Any:
    import geopandas as gpd
    import pyarrow.parquet as pq

    with storage_errors(url, "read"):
        fs, path = open_fs(url, ctx.storage_options)
        with fs.open(path, "rb") as f:
            table = pq.ParquetFile(f).read_row_group(i)
            meta = pq.read_schema(f).metadata
    frame = table.to_pandas()
    crs = None
    if meta and b"geo" in meta:
        import json

        crs = json.loads(meta[b"geo"])["columns"]["geometry"].get("crs")
    return gpd.GeoDataFrame(frame.drop(columns=["geometry"]), geometry=gpd.GeoSeries.from_wkb(frame["geometry"]),
                            crs=crs)


def batch(params: JSON, ctx: TaskContext) -> JSON:
    """The statistics of one batch of zones, written as a Parquet part."""
    part = _read_row_group(params["zones"], params["row_group"], ctx)
    with task_memory():
        table = zs.batch_stats(params["input"], part.drop(columns=["source_wkb"]), id_col=params["id_col"],
                               stats=params["stats"], coverage=params["coverage"], storage_options=ctx.storage_options)
    with tempfile.TemporaryDirectory(prefix="geoproc-zonal-") as tmp:
        local = os.path.join(tmp, "part.parquet")
        table.to_parquet(local, index=False)
        publish(local, params["part"], ctx.storage_options, move=True)
    return {"part": redact(params["part"]), "zones": len(table)}


def table(params: JSON, ctx: TaskContext) -> JSON:
    """Join the parts in the layer's order into the output table; remove the staging files."""
    import pandas as pd

    frames = []
    for url in params["parts"]:
        with storage_errors(url, "read"):
            fs, path = open_fs(url, ctx.storage_options)
            with fs.open(path, "rb") as f:
                frames.append(pd.read_parquet(f))
    out = pd.concat(frames, ignore_index=True).sort_values(zn.ORDER, kind="stable").reset_index(drop=True)
    if params["geometry"]:
        out = _with_geometry(out, params, ctx)
    out = out.drop(columns=[zn.ORDER])
    with tempfile.TemporaryDirectory(prefix="geoproc-table-") as tmp:
        local = os.path.join(tmp, posixpath.basename(params["output"]))
        if local.lower().endswith(".csv"):
            out.to_csv(local, index=False)
        else:
            out.to_parquet(local, index=False)
        size, digest = os.path.getsize(local), sha256_file(local)
        publish(local, params["output"], ctx.storage_options, move=True)
    remove_tree(params["staging"], ctx.storage_options)
    return {"output": redact(params["output"]), "rows": len(out), "columns": [str(c) for c in out.columns],
            "size": size, "sha256": digest}


def _with_geometry(out: Any, params: JSON, ctx: TaskContext) -> Any:
    import geopandas as gpd
    import pyarrow.parquet as pq

    staging = join(params["staging"], "zones.parquet")
    with storage_errors(staging, "read"):
        fs, path = open_fs(staging, ctx.storage_options)
        with fs.open(path, "rb") as f:
            zones = pq.read_table(f, columns=[zn.ORDER, "source_wkb"]).to_pandas()
        with fs.open(posixpath.join(posixpath.dirname(path), "source_crs.wkt"), "r") as f:
            crs = f.read()
    geo = zones.set_index(zn.ORDER)["source_wkb"]
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries.from_wkb(geo.loc[out[zn.ORDER]].to_numpy()), crs=crs)


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    prepared, _, final = values
    return {**(final or {}), "zones": (prepared or {}).get("zones"), "batches": (prepared or {}).get("batches"),
            "stats": p.stats, "coverage": p.coverage}


def zones_staged(p: Params, result: JSON) -> list[WrittenFile]:
    """The zones live on their staging until the table is written (which removes it), then on the table."""
    return [((result["staging"], p.output), None, None)] if result.get("staging") and result.get("zones") else []


def batch_staged(p: Params, result: JSON) -> list[WrittenFile]:
    """A batch lives on its part until the table is written (which removes it), then on the table."""
    return [((result["part"], p.output), None, None)] if result.get("part") else []


def written_table(p: Params, result: JSON) -> list[WrittenFile]:
    return [(p.output, result.get("size"), result.get("sha256"))] if result.get("sha256") else []


def count_batches(p: Params, results: Iterator[JSON]) -> JSON:
    return {"zones": sum(r["zones"] for r in results)}


HANDLERS = {"zonal_stats.zones": zones, "zonal_stats.batch": batch, "zonal_stats.table": table}

ZonalStats = JobType(
    name="zonal_stats",
    description="Statistics of a raster over polygons (exact coverage as exactextract, centre or all touched), "
                "one task per batch of zones nearby, into a Parquet or CSV table.",
    params=Params,
    stages=(
        Stage("zones", handler="zonal_stats.zones", plan=plan_zones, aggregate=only_result, heavy=True,
              outputs=zones_staged,
              description="read and check the zones, reproject them, order them by location into batches"),
        Stage("batches", handler="zonal_stats.batch", plan=plan_batches, aggregate=count_batches, heavy=True,
              retry=RetryPolicy(attempts=3), outputs=batch_staged,
              description="the statistics of each batch of zones"),
        Stage("table", handler="zonal_stats.table", plan=plan_table, aggregate=only_result, outputs=written_table,
              description="join the batches into the output table"),
    ),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
