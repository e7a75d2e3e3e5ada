"""Plans without running: ``geoproc plan`` of a ``large_raster`` or ``process`` job, and
:func:`plan_write` of a write.

Nothing runs and nothing is written but the files asked for: the plan's summary (tiles, bytes to read
and write, memory per task against the budget), optionally its tile footprints as GeoJSON and a PNG
map of the tiles over the source's outline, so a user can check a job's tiling before paying for it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from .api import write_job
from .errors import InvalidParams
from .jobs import mosaic, process, stack
from .jobs.large_raster import LargeRaster, make_plan
from .jobs.mosaic import Mosaic
from .jobs.process import Process
from .raster import regions as rg
from .raster.footprint import polygon_wgs84
from .raster.grid import window_bounds
from .raster.mosaic import region_bbox
from .raster.tiling import TilingPlan
from .spec import resolve

log = logging.getLogger(__name__)

#: jobs planned as regions of a write: job type and its ``planned(params)``
REGIONAL = {Process.name: (Process, process.planned), stack.Stack.name: (stack.Stack, stack.planned),
            Mosaic.name: (Mosaic, mosaic.planned)}


def dry_run(job: str, params: dict[str, Any], *, geojson: str | None = None, png: str | None = None,
            storage_options: dict | None = None) -> dict[str, Any]:
    """Plan a ``large_raster`` or ``process`` job from the inputs' headers only, without running anything.

    Args:
        job: ``large_raster`` or ``process``, or a spec file of one.
        params: parameters overriding the spec's.
        geojson: write the tile footprints (EPSG:4326) here.
        png: write a map of the tiles over the source's outline here (matplotlib).
        storage_options: credentials for reading the header.

    Returns:
        The plan's summary: for ``large_raster`` its tiles, bytes to read and write and memory per
        task against the budget; for ``process``, ``stack`` and ``mosaic`` their regions as
        :func:`plan_write` gives them (a mosaic's with the inputs that reach each region).

    Raises:
        UserError: another job type, or bad parameters.
    """
    name, raw = resolve(job, params)
    if name in REGIONAL:
        jt, planned = REGIONAL[name]
        pp = jt.validate(raw)
        wp, _, arr = planned(pp)
        inputs = None
        if name == Mosaic.name:  # the inputs' footprints, and how many reach each region
            inputs = (pp._footprints, wp.geobox().crs)  # type: ignore[attr-defined]
        return _summarize_regions(jt.job_id(pp), wp, arr, geojson=geojson, png=png, inputs=inputs,
                                  graph=name == Process.name and pp.function is None)  # type: ignore[attr-defined]
    if name != LargeRaster.name:
        raise InvalidParams(name, [f"`geoproc plan` plans {', '.join([LargeRaster.name, *REGIONAL])} jobs only"])
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
    from matplotlib.figure import Figure  # optional and slow: only `geoproc plan --png` needs it

    src = pl.source
    outline = polygon_wgs84(src.crs, window_bounds(src.affine, (0, 0, src.width, src.height)))
    fig = Figure(figsize=(7, 7), dpi=100)  # no pyplot: a notebook's backend and figures stay as they are
    ax = fig.subplots()
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
    log.info("wrote the tiling map of %d tiles to %s", len(feats["features"]), path)


def plan_write(obj: Any, output: str, *, geojson: str | None = None, png: str | None = None,
               **options: Any) -> dict[str, Any]:
    """The regions a ``geoproc.write(obj, output, **options)`` would run, without running anything.

    Returns the job id it would have, the output grid, the regions (count, shape, bytes of output
    each), the bytes to write, and how many Dask tasks the largest region's slice of the graph runs on
    its worker. ``geojson`` writes the regions' footprints (EPSG:4326), ``png`` a map of them.
    """
    jt, model, arr = write_job(obj, output, **options)
    return _summarize_regions(jt.job_id(model), model, arr, geojson=geojson, png=png)


def _summarize_regions(job_id: str, model: Any, arr: Any, *, geojson: str | None, png: str | None,
                       graph: bool = True, inputs: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The regions of a write (``model``: its ``write`` parameters) and their footprints.

    ``graph`` False: the array is only the output's shape (a function or a mosaic computes the
    regions), so there is no graph to count the region's tasks in. ``inputs``: a mosaic's
    (:class:`~geoproc.raster.mosaic.Footprints`, CRS), to count the inputs that reach each region
    and draw their footprints.
    """
    regions = rg.plan_regions(model.geobox(), model.chunks, bands=model.bands,
                              itemsize=np.dtype(model.dtype).itemsize, region_bytes=int(model.region_bytes))
    grid = model.geobox()
    per_pixel = model.bands * np.dtype(model.dtype).itemsize
    biggest = max(regions, key=lambda r: (r.y[1] - r.y[0]) * (r.x[1] - r.x[0]))
    out_bytes = (biggest.y[1] - biggest.y[0]) * (biggest.x[1] - biggest.x[0]) * per_pixel
    part = arr.isel(y=slice(*biggest.y), x=slice(*biggest.x))
    feats = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r.key, "properties": {"key": r.key, "y": list(r.y), "x": list(r.x)},
         "geometry": polygon_wgs84(grid.crs.to_wkt(), window_bounds(grid.transform,
                                                                    (r.x[0], r.y[0], r.x[1] - r.x[0], r.y[1] - r.y[0])))}
        for r in regions]}
    if inputs is not None:
        prints, crs = inputs
        for f, r in zip(feats["features"], regions, strict=True):
            f["properties"]["inputs"] = len(prints.within(region_bbox(grid, r.y, r.x)))
        reach = [f["properties"]["inputs"] for f in feats["features"]]
        feats["inputs"] = [polygon_wgs84(crs.to_wkt(), tuple(b)) for b in prints.boxes]
    summary: dict[str, Any] = {
        "job_id": job_id, "format": model.format, "output": model.output,
        "shape": [model.bands, *grid.shape], "dtype": model.dtype, "chunks": list(model.chunks),
        "crs": f"EPSG:{grid.crs.epsg}" if grid.crs.epsg else grid.crs.to_wkt(), "resolution": [abs(grid.resolution.x), abs(grid.resolution.y)],
        "regions": len(regions), "region_shape": [biggest.y[1] - biggest.y[0], biggest.x[1] - biggest.x[0]],
        "bytes_to_write": int(per_pixel * grid.shape[0] * grid.shape[1]), "region_output_bytes": int(out_bytes),
        "region_tasks": _region_tasks(part.data) if graph else None}
    if inputs is not None:
        summary.update({"inputs": len(feats["inputs"]), "inputs_per_region": {"max": max(reach),
                                                                                "mean": round(sum(reach) / len(reach), 2)}})
    if geojson:
        with open(geojson, "w") as f:
            json.dump({k: v for k, v in feats.items() if k != "inputs"}, f)
        summary["geojson"] = geojson
    if png:
        _draw_regions(feats, png, f"{len(regions)} regions of {summary['region_shape'][0]} x "
                                  f"{summary['region_shape'][1]} px"
                                  + (f", {summary['inputs']} inputs" if inputs is not None else ""))
        summary["png"] = png
    return summary


def _region_tasks(data: Any) -> int:
    """How many Dask tasks computing one region runs: its slice of the graph, culled as Dask culls it."""
    from dask.optimization import cull

    graph = dict(data.__dask_graph__())
    culled, _ = cull(graph, list(_flat(data.__dask_keys__())))
    return len(culled)


def _flat(keys: Any) -> Any:
    if isinstance(keys, list):
        for k in keys:
            yield from _flat(k)
    else:
        yield keys


def _draw_regions(feats: dict[str, Any], path: str, title: str) -> None:
    import matplotlib  # optional and slow: only a PNG needs it
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 7), dpi=100)  # no pyplot: a notebook's backend and figures stay as they are
    ax = fig.subplots()
    for f in feats["features"]:
        fx, fy = zip(*f["geometry"]["coordinates"][0], strict=True)
        reach = f["properties"].get("inputs")
        colour = "#c8d8e8" if not reach else matplotlib.colormaps["YlOrRd"](min(1.0, reach / 4))
        ax.fill(fx, fy, color=colour, edgecolor="#1f4e79", linewidth=1, alpha=0.8)
        label = f["id"] if reach is None else f"{f['id']}\n{reach} in"
        ax.text(sum(fx) / len(fx), sum(fy) / len(fy), label, ha="center", va="center", fontsize=7)
    for poly in feats.get("inputs", []):  # a mosaic's inputs
        px, py = zip(*poly["coordinates"][0], strict=True)
        ax.plot(px, py, color="#2c3e50", linewidth=1.5, linestyle="--")
    ax.set_title(title)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect("equal", adjustable="datalim")
    fig.savefig(path)
