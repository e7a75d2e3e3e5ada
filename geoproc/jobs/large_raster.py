"""large_raster: reproject a raster of any size tile by tile, with bounded memory per task.

Stages:

1. ``plan`` (one task): read the source header (no pixels) and compute the
   :class:`~geoproc.raster.tiling.TilingPlan`: output grid, tile size from ``memory_budget``, and the
   source window of every tile.
2. ``tiles`` (one heavy task per non-empty tile, key ``r{row}c{col}``): read the tile's source window,
   warp it, write it. ``mode=tiles``: a checked COG per tile, its footprint read back from the file.
   ``mode=single``: a plain tiled GeoTIFF part next to the output, and the counts of its pixels'
   statistics (:class:`~geoproc.raster.stats.BandStats`), which the stage merges. A resumed job
   re-runs only the tiles whose tasks did not complete.
3. ``finalize`` (one task): ``tiles``: a VRT mosaic of the tile COGs and a footprints GeoJSON;
   ``single``: one COG assembled from the parts in bounded memory (overviews level by level from a VRT
   of the parts, then a streaming copy by GDAL's COG driver; :func:`geoproc.raster.assemble.assemble_cog`),
   checked (its statistics are the merged counts of the tiles: the COG is not decoded again to
   measure them), published, and the parts removed.

This module declares the job and plans its tasks on the driver; the tile and assembly tasks that run
on the workers are in :mod:`geoproc.jobs.large_raster_tasks`. ``geoproc plan``
(:mod:`geoproc.planview`) shows a job's plan without running it.

Memory: tile tasks keep to ``memory_budget`` (the plan picks the tile size from it; reading, warping
and writing run under a bounded ``GDAL_CACHEMAX``). The assembly task holds a few 512 windows, a
GDAL block cache of an eighth of the budget and, while the COG is compressed, about one 512-row strip
of the output per compression thread (``gdal_threads``).

Outputs (``stem`` = ``name`` or the input file's stem): ``single`` → ``output`` when it ends in
``.tif``, else ``{output}/{stem}.tif``; ``tiles`` → ``{output}/{stem}_r{row}c{col}.tif``,
``{output}/{stem}.vrt`` and ``{output}/{stem}_tiles.geojson``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, field_validator
from rasterio.crs import CRS

from ..errors import InvalidInput
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
from ..raster.grid import SourceInfo
from ..raster.io import open_raster
from ..raster.profiles import RASTER_TYPES, RESAMPLING_CHOICES, resampling_for
from ..raster.stats import BandStats
from ..raster.tiling import BLOCK, MAX_TILE, TilingPlan
from ..storage import join
from ..storage.urls import Location
from ..units import ByteSize
from . import large_raster_tasks

Resampling = Literal[RESAMPLING_CHOICES]  # type: ignore[valid-type]


class Params(JobParams):
    input: Location = Field(..., min_length=1, description="URL of the source raster")
    output: Location = Field(..., min_length=1, description="output directory URL (or the .tif URL for mode=single)")
    mode: Literal["single", "tiles"] = Field("single", description="one COG, or one COG per tile plus a VRT")
    name: str | None = Field(None, description="output file stem (default: the input's stem)")
    target_crs: str = Field("EPSG:4326", min_length=1, description="output CRS")
    resolution: float | None = Field(None, gt=0, description="output pixel size in target units (default: GDAL's)")
    bands: list[int] | None = Field(None, min_length=1, description="1-based source bands in output order, e.g. [5, 3, 2]")
    tier: Literal["visualization", "analysis", "archive"] = Field("analysis", description="COG tier")
    raster_type: Literal[RASTER_TYPES] = Field("unknown", description="picks the resampling kernels")  # type: ignore[valid-type]
    reproject_resampling: Resampling | None = Field(None, description="warp kernel (default: by raster_type)")
    overview_resampling: Resampling | None = Field(None, description="overview kernel (default: by raster_type)")
    nodata: float | None = Field(None, description="output nodata (default: the source's)")
    tile_size: int | None = Field(None, ge=BLOCK, le=MAX_TILE, description="output tile side, a multiple of 512 (default: from memory_budget)")
    halo: int = Field(0, ge=0, le=BLOCK, description="extra pixels around each tile COG (mode=tiles)")
    memory_budget: ByteSize = Field(ByteSize(512 * 2**20), ge=64 * 2**20,
                                    description="memory one tile task may use (bytes, or '512MiB')")
    tolerance: float = Field(0.125, ge=0.0, le=1.0, description="warp transformer error threshold (pixels)")
    gdal_threads: int = Field(2, ge=1, le=64, description="GDAL threads of a tile's warp and of the finalize COG's compression")

    @field_validator("tile_size")
    @classmethod
    def _aligned(cls, v: int | None) -> int | None:
        if v is not None and v % BLOCK:
            raise ValueError(f"must be a multiple of {BLOCK} (the COG block), e.g. {max(BLOCK, v // BLOCK * BLOCK)}")
        return v

    @field_validator("bands")
    @classmethod
    def _bands(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (min(v) < 1 or len(set(v)) != len(v)):
            raise ValueError("bands are distinct 1-based indexes, e.g. [5, 3, 2]")
        return v

    @field_validator("target_crs")
    @classmethod
    def _crs(cls, v: str) -> str:
        CRS.from_user_input(v)
        return v

    def kernels(self) -> tuple[str, str]:
        """(overview, reprojection) resampling."""
        return resampling_for(self.raster_type, self.overview_resampling, self.reproject_resampling)

    def stem(self) -> str:
        if self.name:
            return self.name
        return posixpath.splitext(posixpath.basename(self.input.rstrip("/").split("?")[0]))[0] or "raster"

    def single_url(self) -> str:
        if self.output.lower().endswith((".tif", ".tiff")):
            return self.output
        return join(self.output, self.stem() + ".tif")

    def out_dir(self) -> str:
        if self.mode == "single" and self.output.lower().endswith((".tif", ".tiff")):
            return self.output.rsplit("/", 1)[0] if "/" in self.output else "."
        return self.output


def make_plan(p: Params, storage_options: dict | None) -> TilingPlan:
    """Read the header of ``p.input`` and plan its tiles (runs on a worker, or on the driver for CLI)."""
    with open_raster(p.input, storage_options) as src:
        info = SourceInfo.from_dataset(src, p.input)
    _, warp = p.kernels()
    try:
        return TilingPlan.build(info, p.target_crs, resolution=p.resolution, tile_size=p.tile_size,
                                memory_budget=int(p.memory_budget), halo=p.halo if p.mode == "tiles" else 0,
                                bands=p.bands, resampling=warp, nodata=p.nodata)
    except ValueError as exc:
        raise InvalidInput(f"{exc}") from None


# --- stage 1: plan --------------------------------------------------------------------------------------


def plan_header(p: Params, previous: None) -> Iterator[TaskSpec]:
    """The one task that reads the source header and plans the tiles."""
    yield TaskSpec(key="plan", params=p.model_dump(mode="json"))


def read_plan(params: JSON, ctx: TaskContext) -> JSON:
    """Handler: read the source header and return the tiling plan (and its summary)."""
    pl = make_plan(Params.model_validate(params), ctx.storage_options)
    return {"plan": pl.to_dict(), "summary": pl.summary()}


# --- stage 2: tiles -------------------------------------------------------------------------------------


def plan_tiles(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    """One task per non-empty tile of the plan, keyed ``r{row}c{col}``."""
    plan = TilingPlan.from_dict((previous.value or {})["plan"])
    overview, _ = p.kernels()
    stem = p.stem()
    parts = _parts_dir(p)
    common = {"input": p.input, "bands": list(plan.bands), "crs": p.target_crs, "resampling": plan.resampling,
              "nodata": plan.nodata, "tolerance": p.tolerance, "threads": p.gdal_threads, "mode": p.mode, "tier": p.tier,
              "raster_type": p.raster_type, "overview_resampling": overview,
              "grid": {"crs_wkt": CRS.from_user_input(p.target_crs).to_wkt(), "transform": list(plan.transform),
                       "width": plan.width, "height": plan.height, "count": len(plan.bands), "dtype": plan.dtype,
                       "nodata": plan.nodata, "colorinterp": plan.colorinterp}}
    for t in plan.tiles():
        dest = (join(p.output, f"{stem}_{t.key}.tif") if p.mode == "tiles" else join(parts, f"{t.key}.tif"))
        yield TaskSpec(key=t.key, params={**common, "row": t.row, "col": t.col, "src_window": list(t.src_window or ()),
                                          "window": list(t.window), "outer": list(t.outer),
                                          "transform": list(t.transform), "dest": dest})


def collect_tiles(p: Params, results: Iterator[JSON]) -> JSON:
    """Totals of the tiles stage; for ``single``, the tiles' statistics merged (one running count)."""
    n = empty = size = covered = 0
    grid = None
    counted: BandStats | None = None
    complete = True
    for r in results:
        n += 1
        empty += bool(r.get("empty"))
        size += r.get("size") or 0
        grid = grid or r.get("grid")
        if r.get("stats") is None:
            complete = False
            continue
        covered += r["inner"][2] * r["inner"][3]
        part = BandStats.from_json(r["stats"])
        if counted is None:
            counted = part
        else:
            counted.merge(part)
    out: JSON = {"tiles": n, "empty": empty, "bytes": size, "grid": grid}
    if counted is not None and complete:
        out["stats"] = {"counts": counted.to_json(), "covered": covered}
    return out


# --- stage 3: finalize (assemble the outputs) --------------------------------------------------------


def plan_assembly(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    """The one task that assembles the written tiles into the job's outputs."""
    keep = ("key", "row", "col", "url", "transform", "shape", "inner", "bbox_wgs84", "bounds", "size", "sha256")
    tiles = [{k: r.get(k) for k in keep} for r in previous.results() if not r.get("empty")]
    overview, _ = p.kernels()
    yield TaskSpec(key="finalize", params={"mode": p.mode, "grid": (previous.value or {}).get("grid"),
                                           "tiles": tiles, "output": p.single_url() if p.mode == "single" else p.output,
                                           "stem": p.stem(), "tier": p.tier, "raster_type": p.raster_type,
                                           "overview_resampling": overview, "gdal_threads": p.gdal_threads,
                                           "cache_bytes": assembly_cache(int(p.memory_budget)),
                                           "stats": (previous.value or {}).get("stats"),
                                           "parts": _parts_dir(p)})


def assembly_cache(budget: int) -> int:
    """GDAL block cache of the assembly task: an eighth of the budget, between 8 and 64 MiB."""
    return max(8 * 2**20, min(64 * 2**20, budget // 8))


def _parts_dir(p: Params) -> str:
    return join(p.out_dir(), f".{p.stem()}.parts")


def tile_outputs(p: Params, result: JSON) -> list[WrittenFile]:
    """The tile COG a completed tile task wrote (``tiles``). The parts of a ``single`` COG are removed
    once assembled, so they are not checked: a lost single COG is made again with ``--force``."""
    if p.mode != "tiles" or result.get("empty") or not result.get("url"):
        return []
    return [(result["url"], result.get("size"), result.get("sha256"))]


def assembly_outputs(p: Params, result: JSON) -> list[WrittenFile]:
    """The tiles' VRT mosaic and footprints (``tiles``); see :func:`tile_outputs` for ``single``."""
    if p.mode != "tiles":
        return []
    return [(url, None, None) for url in (result.get("mosaic"), result.get("footprints")) if url]


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    """The assembly's result, with the plan's summary and the tiles stage's totals."""
    planned, tiles, final = values
    return {**(final or {}), "plan": (planned or {}).get("summary"), "tiling": tiles}


LargeRaster = JobType(
    name="large_raster",
    description="Reproject a large raster tile by tile (bounded memory): one COG, or COG tiles plus a VRT.",
    params=Params,
    stages=(
        Stage("plan", handler="large_raster.plan", plan=plan_header, aggregate=only_result,
              description="read the header, plan the output grid and tiles"),
        Stage("tiles", handler="large_raster.tile", plan=plan_tiles, aggregate=collect_tiles, heavy=True,
              retry=RetryPolicy(attempts=3), outputs=tile_outputs, description="one task per tile: windowed read, warp, write"),
        Stage("finalize", handler="large_raster.finalize", plan=plan_assembly, aggregate=only_result, heavy=True,
              outputs=assembly_outputs,
              description="assemble the single COG (with overviews) or the VRT mosaic"),
    ),
    hash_exclude=frozenset({"gdal_threads"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)

HANDLERS = {"large_raster.plan": read_plan, **large_raster_tasks.HANDLERS}
