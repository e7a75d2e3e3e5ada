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
   of the parts, then a streaming copy by GDAL's COG driver; :func:`geoproc.raster.mosaic.assemble_cog`),
   checked (its statistics are the merged counts of the tiles: the COG is not decoded again to
   measure them), published, and the parts removed.

Memory: tile tasks keep to ``memory_budget`` (the plan picks the tile size from it; reading, warping
and writing run under a bounded ``GDAL_CACHEMAX``). The finalize task holds a few 512 windows, a
GDAL block cache of an eighth of the budget and, while the COG is compressed, about one 512-row strip
of the output per compression thread (``gdal_threads``).

:func:`dry_run` (``geoproc plan``) prints the plan of a job without running it.

Outputs (``stem`` = ``name`` or the input file's stem): ``single`` → ``output`` when it ends in
``.tif``, else ``{output}/{stem}.tif``; ``tiles`` → ``{output}/{stem}_r{row}c{col}.tif``,
``{output}/{stem}.vrt`` and ``{output}/{stem}_tiles.geojson``.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

from ..model import ALL_OR_NOTHING, JSON, JobType, RetryPolicy, Stage, StageOutput, TaskContext, TaskSpec
from ..raster.profiles import RASTER_TYPES, RESAMPLING_CHOICES, resampling_for
from ..raster.tiling import BLOCK, GDAL_CACHE, MAX_TILE, TilingPlan

Resampling = Literal[RESAMPLING_CHOICES]  # type: ignore[valid-type]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(..., min_length=1, description="URL of the source raster")
    output: str = Field(..., min_length=1, description="output directory URL (or the .tif URL for mode=single)")
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
    memory_budget: ByteSize = Field(ByteSize(512 * 2**20), ge=64 * 2**20, description="memory one tile task may use")
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
        from rasterio.crs import CRS

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
        from ..storage import join

        if self.output.lower().endswith((".tif", ".tiff")):
            return self.output
        return join(self.output, self.stem() + ".tif")

    def out_dir(self) -> str:
        if self.mode == "single" and self.output.lower().endswith((".tif", ".tiff")):
            return self.output.rsplit("/", 1)[0] if "/" in self.output else "."
        return self.output


def make_plan(p: Params, storage_options: dict | None) -> TilingPlan:
    """Read the header of ``p.input`` and plan its tiles (runs on a worker, or on the driver for CLI)."""
    from ..raster.io import open_raster
    from ..raster.tiling import SourceInfo

    with open_raster(p.input, storage_options) as src:
        info = SourceInfo.from_dataset(src, p.input)
    _, warp = p.kernels()
    try:
        return TilingPlan.build(info, p.target_crs, resolution=p.resolution, tile_size=p.tile_size,
                                memory_budget=int(p.memory_budget), halo=p.halo if p.mode == "tiles" else 0,
                                bands=p.bands, resampling=warp, nodata=p.nodata)
    except ValueError as exc:
        from ..errors import InvalidInput

        raise InvalidInput(f"{exc}") from None


# --- planning (driver) -------------------------------------------------------------------------------


def plan_plan(p: Params, previous: None) -> Iterator[TaskSpec]:
    yield TaskSpec(key="plan", params=p.model_dump(mode="json"))


def first(p: Params, results: Iterator[JSON]) -> JSON:
    return next(results, {}) or {}


def plan_tiles(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    """One task per non-empty tile of the plan, keyed ``r{row}c{col}``."""
    from ..storage import join

    plan = TilingPlan.from_dict((previous.value or {})["plan"])
    overview, _ = p.kernels()
    stem = p.stem()
    parts = join(p.out_dir(), f".{stem}.parts")
    common = {"input": p.input, "bands": list(plan.bands), "crs": p.target_crs, "resampling": plan.resampling,
              "nodata": plan.nodata, "tolerance": p.tolerance, "threads": p.gdal_threads, "mode": p.mode, "tier": p.tier,
              "raster_type": p.raster_type, "overview_resampling": overview,
              "grid": {"crs_wkt": _wkt(p.target_crs), "transform": list(plan.transform), "width": plan.width,
                       "height": plan.height, "count": len(plan.bands), "dtype": plan.dtype,
                       "nodata": plan.nodata, "colorinterp": plan.colorinterp}}
    for t in plan.tiles():
        dest = (join(p.output, f"{stem}_{t.key}.tif") if p.mode == "tiles" else join(parts, f"{t.key}.tif"))
        yield TaskSpec(key=t.key, params={**common, "row": t.row, "col": t.col, "src_window": list(t.src_window or ()),
                                          "window": list(t.window), "outer": list(t.outer),
                                          "transform": list(t.transform), "dest": dest})


def collect_tiles(p: Params, results: Iterator[JSON]) -> JSON:
    """Totals of the tiles stage; for ``single``, the tiles' statistics merged (one running count)."""
    from ..raster.stats import BandStats

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


def plan_finalize(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    keep = ("key", "row", "col", "url", "transform", "shape", "inner", "bbox_wgs84", "bounds", "size", "sha256")
    tiles = [{k: r.get(k) for k in keep} for r in previous.results() if not r.get("empty")]
    overview, _ = p.kernels()
    yield TaskSpec(key="finalize", params={"mode": p.mode, "grid": (previous.value or {}).get("grid"),
                                           "tiles": tiles, "output": p.single_url() if p.mode == "single" else p.output,
                                           "stem": p.stem(), "tier": p.tier, "raster_type": p.raster_type,
                                           "overview_resampling": overview, "gdal_threads": p.gdal_threads,
                                           "cache_bytes": finalize_cache(int(p.memory_budget)),
                                           "stats": (previous.value or {}).get("stats"),
                                           "parts": _parts_dir(p)})


def finalize_cache(budget: int) -> int:
    """GDAL block cache of the finalize task: an eighth of the budget, between 8 and 64 MiB."""
    return max(8 * 2**20, min(64 * 2**20, budget // 8))


def _parts_dir(p: Params) -> str:
    from ..storage import join

    return join(p.out_dir(), f".{p.stem()}.parts")


def _wkt(crs: str) -> str:
    from rasterio.crs import CRS

    return CRS.from_user_input(crs).to_wkt()


# --- handlers (workers) ------------------------------------------------------------------------------


def plan(params: JSON, ctx: TaskContext) -> JSON:
    """Read the source header and return the tiling plan (and its summary)."""
    pl = make_plan(Params.model_validate(params), ctx.storage_options)
    return {"plan": pl.to_dict(), "summary": pl.summary()}


def tile(params: JSON, ctx: TaskContext) -> JSON:
    """Warp one tile and write it (a checked COG, or a part of the single output)."""
    import rasterio

    from ..raster.io import open_raster
    from ..raster.warp import warp_tile

    x, y, w, h = params["outer"]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE >> 20):  # reading, writing and checking: a bounded cache
        with open_raster(params["input"], ctx.storage_options) as src:
            arr = warp_tile(src, bands=params["bands"], src_window=tuple(params["src_window"]) or None,
                            dst_crs=params["crs"], dst_transform=params["transform"], dst_shape=(h, w),
                            resampling=params["resampling"], dst_nodata=params["nodata"],
                            tolerance=params["tolerance"], threads=params.get("threads", 1))
        return _write_tile(arr, params, ctx)


def _write_tile(arr: Any, params: JSON, ctx: TaskContext) -> JSON:
    import numpy as np

    from ..raster import footprint
    from ..raster.mosaic import check_cog, cog_options, write_cog, write_part
    from ..raster.stats import BandStats
    from ..storage import publish, redact, sha256_file

    x, y = params["outer"][:2]
    nodata = params["nodata"]
    base = {"key": ctx.key, "row": params["row"], "col": params["col"], "grid": params["grid"]}
    if params["mode"] == "tiles" and nodata is not None and _all_nodata(arr, nodata, np):
        return {**base, "empty": True}
    inner = [params["window"][0] - x, params["window"][1] - y, params["window"][2], params["window"][3]]
    with tempfile.TemporaryDirectory(prefix="geoproc-tile-") as tmp:
        local = os.path.join(tmp, f"{ctx.key}.tif")
        if params["mode"] == "tiles":
            opts = cog_options(params["tier"], str(arr.dtype), overview_resampling=params["overview_resampling"],
                               raster_type=params["raster_type"])
            write_cog(arr, local, crs=params["crs"], transform=params["transform"], nodata=nodata, options=opts)
            del arr
            facts = check_cog(local)
            facts["bbox_wgs84"] = footprint.bbox_wgs84(params["crs"], tuple(facts["bounds"]))
            facts.pop("tags", None)
        else:
            write_part(arr, local, crs=params["crs"], transform=params["transform"], nodata=nodata)
            counted = BandStats(arr.shape[0], str(arr.dtype), nodata)  # this tile's share of the COG's statistics
            ix, iy, iw, ih = inner
            counted.add(arr[:, iy:iy + ih, ix:ix + iw])
            del arr
            facts = {**footprint.measured(local), "stats": counted.to_json()}
        size, digest = os.path.getsize(local), sha256_file(local)
        publish(local, params["dest"], ctx.storage_options, move=True)
    return {**base, **facts, "url": redact(params["dest"]), "size": size, "sha256": digest, "inner": inner}


def _all_nodata(arr: Any, nodata: float, np: Any) -> bool:
    if isinstance(nodata, float) and np.isnan(nodata):
        return bool(np.isnan(arr).all())
    return bool((arr == nodata).all())


def finalize(params: JSON, ctx: TaskContext) -> JSON:
    """Assemble the outputs: the single COG from its parts, or the VRT mosaic of the tile COGs."""
    if params["mode"] == "single":
        return _finalize_single(params, ctx)
    return _finalize_tiles(params, ctx)


def _sources(params: JSON, path_of) -> list:
    from ..raster.mosaic import placement

    grid = params["grid"]
    out = []
    for t in sorted(params["tiles"], key=lambda t: (t["row"], t["col"])):
        src_rect, dst_rect = placement(grid["transform"], t["transform"], tuple(t["shape"]), tuple(t["inner"]))
        out.append((path_of(t["url"]), src_rect, dst_rect))
    return out


def _finalize_single(params: JSON, ctx: TaskContext) -> JSON:
    """The single COG: overviews level by level from the parts' mosaic, then a streaming COG copy."""
    from ..raster import footprint
    from ..raster.mosaic import assemble_cog, build_vrt, check_cog, cog_options
    from ..storage import gdal_env, gdal_path, open_fs, publish, redact, sha256_file, storage_errors

    grid, out_url = params["grid"], params["output"]
    opts = cog_options(params["tier"], grid["dtype"], overview_resampling=params["overview_resampling"],
                       raster_type=params["raster_type"], threads=params["gdal_threads"])
    nodata = grid.get("nodata")
    vrt = {"crs_wkt": grid["crs_wkt"], "transform": grid["transform"], "width": grid["width"],
           "height": grid["height"], "count": grid["count"], "dtype": grid["dtype"], "nodata": nodata,
           "colorinterp": grid.get("colorinterp"), "sources": _sources(params, gdal_path)}
    with tempfile.TemporaryDirectory(prefix="geoproc-mosaic-") as tmp:
        mosaic = os.path.join(tmp, "mosaic.vrt")
        build_vrt(mosaic, **vrt)
        local = os.path.join(tmp, params["stem"] + ".tif")
        assemble_cog(mosaic, local, opts, overview_resampling=params["overview_resampling"], nodata=nodata,
                     cache_bytes=params["cache_bytes"], vrt=vrt,
                     gdal_config=gdal_env(params["parts"], ctx.storage_options))
        facts = check_cog(local, cache_bytes=params["cache_bytes"], stats=_merged_stats(params, opts))
        for key in ("tags", "provenance", "bbox_wgs84"):
            facts.pop(key, None)
        facts["bbox_wgs84"] = footprint.bbox_wgs84(grid["crs_wkt"], tuple(facts["bounds"]))
        size, digest = os.path.getsize(local), sha256_file(local)
        publish(local, out_url, ctx.storage_options, move=True)
    with storage_errors(params["parts"], "delete"):
        fs, path = open_fs(params["parts"], ctx.storage_options)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    return {**facts, "mode": "single", "output": redact(out_url), "size": size, "sha256": digest,
            "tiles": len(params["tiles"])}


def _merged_stats(params: JSON, opts: dict[str, str]) -> list[JSON] | None:
    """The single COG's band statistics from the counts its tiles merged, or None to measure the file."""
    from ..raster.stats import BandStats, assembled_stats

    grid, counted = params["grid"], params.get("stats")
    if not counted:
        return None
    return assembled_stats(BandStats.from_json(counted["counts"]), covered=counted["covered"],
                           width=grid["width"], height=grid["height"], lossless=opts.get("COMPRESS") != "JPEG")


def _finalize_tiles(params: JSON, ctx: TaskContext) -> JSON:
    from ..raster.footprint import polygon_wgs84
    from ..raster.mosaic import build_vrt
    from ..storage import join, publish, redact

    grid, stem = params["grid"] or {}, params["stem"]
    items = []
    feats = []
    for t in params["tiles"]:
        items.append({"id": f"{stem}_{t['key']}", "href": t["url"], "bbox": t["bbox_wgs84"], "bounds": t["bounds"],
                      "transform": t["transform"], "shape": t["shape"], "size": t["size"], "sha256": t["sha256"]})
        feats.append({"type": "Feature", "id": t["key"], "properties": {"key": t["key"], "href": t["url"]},
                      "geometry": polygon_wgs84(grid["crs_wkt"], tuple(t["bounds"]))})
    vrt_url, geojson_url = join(params["output"], f"{stem}.vrt"), join(params["output"], f"{stem}_tiles.geojson")
    result: JSON = {"mode": "tiles", "tiles": len(items), "items": items, "mosaic": redact(vrt_url),
                    "footprints": redact(geojson_url)}
    if not items:
        return result
    with tempfile.TemporaryDirectory(prefix="geoproc-vrt-") as tmp:
        vrt = os.path.join(tmp, f"{stem}.vrt")
        build_vrt(vrt, crs_wkt=grid["crs_wkt"], transform=grid["transform"], width=grid["width"],
                  height=grid["height"], count=grid["count"], dtype=grid["dtype"], nodata=grid.get("nodata"),
                  sources=_sources(params, lambda url: posixpath.basename(url)), relative=True)
        publish(vrt, vrt_url, ctx.storage_options)
        gj = os.path.join(tmp, "tiles.geojson")
        with open(gj, "w") as f:
            json.dump({"type": "FeatureCollection", "features": feats}, f)
        publish(gj, geojson_url, ctx.storage_options)
    west = [i["bbox"] for i in items]
    result["bbox_wgs84"] = _union_bbox(west)
    return result


def _union_bbox(boxes: list[list[float]]) -> list[float] | None:
    """Union of STAC bboxes, keeping a union that crosses the antimeridian as west > east."""
    if not boxes:
        return None
    ws = [b[0] for b in boxes]
    es = [b[2] if b[2] >= b[0] else b[2] + 360.0 for b in boxes]  # continuous longitudes
    if max(es) - min(ws) > 180.0:  # some boxes lie east of 180: move them onto the same turn
        shifted = [(w + 360.0, e + 360.0) if w < 0 else (w, e) for w, e in zip(ws, es, strict=True)]
        ws, es = [w for w, _ in shifted], [e for _, e in shifted]
    west, east = min(ws), max(es)
    if east > 180.0:
        east -= 360.0
    return [west, min(b[1] for b in boxes), east, max(b[3] for b in boxes)]


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    planned, tiles, final = values
    return {**(final or {}), "plan": (planned or {}).get("summary"), "tiling": tiles}


LargeRaster = JobType(
    name="large_raster",
    description="Reproject a large raster tile by tile (bounded memory): one COG, or COG tiles plus a VRT.",
    params=Params,
    stages=(
        Stage("plan", handler="large_raster.plan", plan=plan_plan, aggregate=first,
              description="read the header, plan the output grid and tiles"),
        Stage("tiles", handler="large_raster.tile", plan=plan_tiles, aggregate=collect_tiles, heavy=True,
              retry=RetryPolicy(attempts=3), description="one task per tile: windowed read, warp, write"),
        Stage("finalize", handler="large_raster.finalize", plan=plan_finalize, aggregate=first, heavy=True,
              description="assemble the single COG (with overviews) or the VRT mosaic"),
    ),
    hash_exclude=frozenset({"gdal_threads"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)

JOBS = {LargeRaster.name: LargeRaster}
HANDLERS = {"large_raster.plan": plan, "large_raster.tile": tile, "large_raster.finalize": finalize}


# --- dry run (``geoproc plan``) -------------------------------------------------------------------


def dry_run(job: str, params: dict[str, Any], *, geojson: str | None = None, png: str | None = None,
            storage_options: dict | None = None) -> dict[str, Any]:
    """Plan a ``large_raster`` job from the source header only, without running anything.

    Args:
        job: ``large_raster`` or a spec file of that job.
        params: parameters overriding the spec's.
        geojson: write the tile footprints (EPSG:4326) here.
        png: write a map of the tiles over the source's outline here (matplotlib).
        storage_options: credentials for reading the header.

    Returns:
        The plan's summary (tiles, bytes to read and write, memory per task vs the budget).

    Raises:
        UserError: not a ``large_raster`` job, or bad parameters.
    """
    from ..api import resolve
    from ..errors import InvalidParams

    name, raw = resolve(job, params)
    if name != LargeRaster.name:
        raise InvalidParams(name, [f"`geoproc plan` plans {LargeRaster.name} jobs only"])
    p = LargeRaster.validate(raw)
    pl = make_plan(p, storage_options)  # type: ignore[arg-type]
    summary = pl.summary()
    feats = pl.footprints()
    if geojson:
        with open(geojson, "w") as f:
            json.dump(feats, f)
        summary["geojson"] = geojson
    if png:
        draw_plan(pl, feats, png)
        summary["png"] = png
    return summary


def draw_plan(pl: TilingPlan, feats: dict[str, Any], path: str) -> None:
    """A PNG map: the source's outline and every tile footprint (labelled) in longitude/latitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..raster.footprint import polygon_wgs84
    from ..raster.tiling import _window_bounds

    src = pl.source
    outline = polygon_wgs84(src.crs, _window_bounds(src.affine, (0, 0, src.width, src.height)))
    fig, ax = plt.subplots(figsize=(7, 7), dpi=100)
    xs, ys = zip(*outline["coordinates"][0], strict=True)
    ax.fill(xs, ys, color="#c8d8e8", edgecolor="#1f4e79", linewidth=2, label="source")
    for f in feats["features"]:
        fx, fy = zip(*f["geometry"]["coordinates"][0], strict=True)
        ax.plot(fx, fy, color="#c0392b", linewidth=1)
        ax.text(sum(fx) / len(fx), sum(fy) / len(fy), f["id"], ha="center", va="center", fontsize=7)
    ax.set_title(f"{len(feats['features'])} tiles of {pl.tile_size} px in {pl.crs}")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="lower right")
    fig.savefig(path)
    plt.close(fig)
