"""Fixtures of the tiling tests: smooth synthetic rasters, an in-process runner, a reference warp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geoproc.jobs import tiled
from geoproc.model import StageOutput, TaskContext

NODATA = -9999.0

# name -> (crs, bounds); each about 20-300 km wide, 1024 x 1024 pixels
CASES = {
    "utm33": ("EPSG:32633", (500000, 5000000, 520480, 5020480)),
    "polar3413": ("EPSG:3413", (-600000, -600000, 600000, 600000)),
    "geographic": ("EPSG:4326", (10.0, 40.0, 12.0, 42.0)),
    "antimeridian_utm60": ("EPSG:32660", (600000, 5000000, 900000, 5300000)),
}


def smooth(bands: int, h: int, w: int) -> np.ndarray:
    """Smooth, band-distinct values (gradients below 1 per pixel) so resampling differences stay small."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([100 + 50 * np.sin(xx / 97.0 + b) * np.cos(yy / 131.0) + 40 * b
                     for b in range(bands)]).astype("float32")


@pytest.fixture
def smooth_raster(raster_factory):
    """``make(case, size=1024, bands=3)`` -> Path of a float32 GeoTIFF with nodata -9999."""

    def make(case: str, size: int = 1024, bands: int = 3, **kw) -> Path:
        crs, bounds = CASES[case]
        return raster_factory(f"{case}.tif", crs=crs, bounds=bounds, size=(size, size), nodata=NODATA,
                              data=smooth(bands, size, size), tiled=True, blockxsize=256, blockysize=256, **kw)

    return make


def ctx(stage: str, key: str) -> TaskContext:
    return TaskContext(job_id="test", job_type="large_raster", stage=stage, task_id=f"{stage}-{key}", key=key,
                       attempt=1)


def run_inline(**raw) -> dict:
    """Run the large_raster stages in this process, handler by handler (no Dask, no ledger)."""
    p = tiled.Params.model_validate(raw)
    specs = list(tiled.plan_plan(p, None))
    planned = tiled.plan(specs[0].params, ctx("plan", "plan"))
    tile_specs = list(tiled.plan_tiles(p, StageOutput(planned)))
    results = [tiled.tile(s.params, ctx("tiles", s.key)) for s in tile_specs]
    agg = tiled.collect_tiles(p, iter(results))
    fin_spec = next(tiled.plan_finalize(p, StageOutput(agg, lambda: iter(results))))
    final = tiled.finalize(fin_spec.params, ctx("finalize", "finalize"))
    return {"plan": planned, "tiles": results, "final": final, "result": tiled.job_result(p, [planned, agg, final])}


def reference_warp(path: Path, plan: dict, bands: list[int] | None = None, resampling: str = "bilinear"):
    """GDAL's warp of the whole raster onto the plan's grid (rasterio.warp.reproject of the full array)."""
    from affine import Affine

    with rasterio.open(path) as src:
        idx = bands or list(range(1, src.count + 1))
        data = src.read(idx)
        out = np.full((len(idx), plan["height"], plan["width"]), NODATA, dtype=data.dtype)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs, src_nodata=src.nodata,
                  dst_transform=Affine(*plan["transform"]), dst_crs=plan["crs"], dst_nodata=NODATA,
                  resampling=Resampling[resampling])
    return out
