"""A job type used by the report tests: one quicklook PNG per input raster, through the real engine.

Each task reads a GeoTIFF with rasterio, reduces it to at most ``size`` pixels on its long side, colours it
with matplotlib's viridis over the band's own range, and writes the PNG next to ``out``. A file that is
not a raster fails its task as invalid input (with a remediation), so the report has an error to show.
The module registers itself on import.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from geoproc.errors import CorruptRaster
from geoproc.jobs import ALL_HANDLERS, ALL_JOBS
from geoproc.model import PARTIAL_OK, JobType, Stage, TaskSpec


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: str = Field(description="directory of input files (*.tif)")
    out: str = Field(description="directory for the quicklook PNGs")
    size: int = Field(64, ge=8, le=1024, description="long side of a quicklook, in pixels")


def plan(params: Params, previous: None) -> list[TaskSpec]:
    return [TaskSpec(key=p.name, params={"src": str(p), "out": params.out, "size": params.size})
            for p in sorted(Path(params.inputs).glob("*.tif"))]


def quicklook_array(src: str, size: int) -> np.ndarray:
    """Band 1 of ``src`` decimated (nearest) to at most ``size`` pixels on its long side, as float64."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(src) as ds:
        step = max(1, -(-max(ds.width, ds.height) // size))
        shape = (max(1, ds.height // step), max(1, ds.width // step))
        return ds.read(1, out_shape=shape, resampling=Resampling.nearest).astype("float64")


def colour(a: np.ndarray) -> np.ndarray:
    """RGB uint8 image of ``a`` through viridis, stretched over its own min..max."""
    from matplotlib import colormaps

    lo, hi = float(a.min()), float(a.max())
    norm = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return (colormaps["viridis"](norm)[..., :3] * 255).round().astype("uint8")


def make_quicklook(params: dict, ctx) -> dict:
    from PIL import Image
    from rasterio.errors import RasterioIOError

    try:
        a = quicklook_array(params["src"], params["size"])
    except RasterioIOError as exc:
        raise CorruptRaster(f"{Path(params['src']).name} is not a readable raster: {exc}") from None
    out = Path(params["out"]) / (Path(params["src"]).stem + ".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colour(a), "RGB").save(out)
    return {"src": params["src"], "quicklooks": [{"href": str(out), "title": f"{Path(params['src']).name}"}],
            "shape": list(a.shape), "metrics": {"bytes_written": out.stat().st_size}}


def summary(params: Params, results) -> dict:
    return {"quicklooks": [q for r in results for q in r["quicklooks"]]}


QuicklookDemo = JobType(
    name="quicklook_demo",
    description="Report test job: one quicklook PNG per input raster.",
    params=Params,
    stages=(Stage("quicklook", handler="reportjobs.make_quicklook", plan=plan, aggregate=summary, heavy=True,
                  description="read each raster, write a viridis PNG"),),
    failure_policy=PARTIAL_OK,
    finalize=lambda params, values: values[0] or {},
)

ALL_JOBS.setdefault(QuicklookDemo.name, QuicklookDemo)
ALL_HANDLERS.setdefault("reportjobs.make_quicklook", make_quicklook)
