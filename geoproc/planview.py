"""``geoproc plan``: the tiling plan of a ``large_raster`` job, from the source header only.

Nothing runs and nothing is written but the files asked for: the plan's summary (tiles, bytes to read
and write, memory per task against the budget), optionally its tile footprints as GeoJSON and a PNG
map of the tiles over the source's outline, so a user can check a job's tiling before paying for it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .errors import InvalidParams
from .jobs.large_raster import LargeRaster, make_plan
from .raster.footprint import polygon_wgs84
from .raster.grid import window_bounds
from .raster.tiling import TilingPlan
from .spec import resolve

log = logging.getLogger(__name__)


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
    import matplotlib  # an optional, slow import: only `geoproc plan --png` needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src = pl.source
    outline = polygon_wgs84(src.crs, window_bounds(src.affine, (0, 0, src.width, src.height)))
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
    log.info("wrote the tiling map of %d tiles to %s", len(feats["features"]), path)
