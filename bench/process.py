"""process benchmark: NDVI band math to a COG against its peers, and a focal mean larger than a worker.

    python bench/process.py                      # the issue's case: NDVI on 16,000 x 16,000, then the focal mean
    python bench/process.py --size 4096 --dem-size 8192 --memory-limit 256MiB     # quick

1. **NDVI** of a generated 4-band uint16 raster (``bench/write.py``'s, tiled 512, DEFLATE) into a float32
   file, NaN where red is nodata, each variant in its own process tree:

   * ``geoproc``     ``geoproc run process --set expr="(b4 - b3) / (b4 + b3)"`` to a COG (DEFLATE,
                     predictor 3, average overviews): a local cluster of worker processes, one ledger
                     task per region, the COG assembled, validated and checksummed;
   * ``rio-calc``    ``rio calc`` to a plain tiled GTiff (DEFLATE, no overviews), one thread;
   * ``rioxarray``   rioxarray + Dask ``to_raster`` then ``rio cogeo create`` (what a user writes).

   Target: geoproc faster than both, at lower peak memory.

2. **Focal mean**: ``jobs/functions/filters.py:focal_mean`` (3 x 3, ``halo=1``) over a generated float32
   DEM bigger than one worker's memory limit (``GEOPROC_MEMORY_LIMIT``). Target: it completes, and the
   whole process tree's peak memory stays below the DEM's size.

Peak memory is the sum of the RSS of a variant's whole process tree (driver, scheduler and workers),
sampled every 20 ms; wall time includes geoproc's cluster start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from benchkit import measure
from write import make_raster

HERE = os.path.dirname(os.path.abspath(__file__))
FOCAL = os.path.join(os.path.dirname(HERE), "jobs", "functions", "filters.py") + ":focal_mean"
NDVI_CALC = "(/ (- (read 1 4 'float32') (read 1 3 'float32')) (+ (read 1 4 'float32') (read 1 3 'float32')))"


def make_dem(path: str, size: int) -> None:
    """A float32 DEM (hills and a slope, nodata in one corner), tiled 512, DEFLATE, written strip by strip."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(300000, 5600000, 10, 10), nodata=-9999.0,
                       tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE", BIGTIFF="IF_SAFER") as dst:
        for r in range(0, size, 512):
            h = min(512, size - r)
            yy, xx = np.mgrid[r:r + h, 0:size].astype("float32")
            z = 800 + 400 * np.sin(xx / 900) * np.cos(yy / 1300) + 0.01 * (xx + yy) + 3 * np.sin(xx / 7)
            if r < size // 10:
                z[:, : size // 10] = -9999.0
            dst.write(z.astype("float32"), 1, window=Window(0, r, size, h))


def child_rioxarray(src: str, out: str) -> None:
    """rioxarray + Dask to_raster of the NDVI, then rio cogeo create; prints ``BENCH {}``."""
    import threading

    import dask
    import rioxarray
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles
    from write import ndvi_of

    a = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 512, "x": 512}, lock=False)
    tmp = out + ".tmp.tif"
    with dask.config.set(scheduler="threads"):
        ndvi_of(a).rio.to_raster(tmp, tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE", predictor=3,
                                 lock=threading.Lock(), BIGTIFF="IF_SAFER")
    profile = {**cog_profiles.get("deflate"), "predictor": 3, "blockxsize": 512, "blockysize": 512}
    cog_translate(tmp, out, profile, overview_resampling="average", quiet=True, config={"GDAL_NUM_THREADS": "ALL_CPUS"})
    os.remove(tmp)
    print("BENCH {}", flush=True)


def geoproc_cmd(work: str, *sets: str) -> list[str]:
    args = [sys.executable, "-m", "geoproc.cli", "run", "process", "--cluster", "local",
            "--ledger", f"sqlite:///{work}/ledger.db", "--json"]
    for s in sets:
        args += ["--set", s]
    return args


def executed(res: dict) -> dict:
    return {"wall_s": res["wall_s"], "peak_mib": res["peak_mib"]}


def ndvi(src: str, base: str) -> dict:
    out: dict = {}
    work = os.path.join(base, "geoproc")
    shutil.rmtree(work, ignore_errors=True)  # a ledger left by an earlier run would make the job a cached no-op
    os.makedirs(work)
    out["geoproc"] = executed(measure(geoproc_cmd(work, f"input={src}", "expr=(b4 - b3) / (b4 + b3)",
                                                  f"output={work}/ndvi.tif")))
    print(f"geoproc     {out['geoproc']}", file=sys.stderr, flush=True)
    out["rio-calc"] = executed(measure([os.path.join(os.path.dirname(sys.executable), "rio"), "calc", NDVI_CALC, src, os.path.join(base, "calc.tif"), "--overwrite",
                                        "--profile", "tiled=true", "--profile", "blockxsize=512", "--profile",
                                        "blockysize=512", "--profile", "compress=deflate", "--profile",
                                        "BIGTIFF=IF_SAFER"]))
    print(f"rio-calc    {out['rio-calc']}", file=sys.stderr, flush=True)
    out["rioxarray"] = executed(measure([sys.executable, __file__, "--child-rioxarray", src,
                                         os.path.join(base, "rioxarray.tif")]))
    print(f"rioxarray   {out['rioxarray']}", file=sys.stderr, flush=True)
    for peer in ("rio-calc", "rioxarray"):
        out[f"time_ratio_vs_{peer}"] = round(out["geoproc"]["wall_s"] / out[peer]["wall_s"], 2)
        out[f"memory_ratio_vs_{peer}"] = round(out["geoproc"]["peak_mib"] / max(1, out[peer]["peak_mib"]), 2)
    return out


def focal(dem: str, base: str, memory_limit: str, region_bytes: str) -> dict:
    work = os.path.join(base, "focal")
    shutil.rmtree(work, ignore_errors=True)  # a ledger left by an earlier run would make the job a cached no-op
    os.makedirs(work)
    env = {**os.environ, "GEOPROC_MEMORY_LIMIT": memory_limit, "GEOPROC_WORKERS": "2"}
    res = measure(geoproc_cmd(work, f"input={dem}", f"function={FOCAL}", "halo=1", f"output={work}/focal.tif",
                              f"region_bytes={region_bytes}"), env=env)
    import rasterio

    with rasterio.open(dem) as ds:
        raster_mib = ds.width * ds.height * 4 >> 20
    return {**executed(res), "dem_mib": raster_mib, "worker_memory_limit": memory_limit,
            "peak_below_raster": res["peak_mib"] < raster_mib}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16_000, help="NDVI raster side in pixels (default 16000)")
    ap.add_argument("--dem-size", type=int, default=24_000, help="DEM side in pixels (default 24000: 2.1 GiB)")
    ap.add_argument("--memory-limit", default="1GiB", help="memory limit of each of the 2 workers (focal mean)")
    ap.add_argument("--region-bytes", default="16MiB", help="output bytes per region of the focal mean")
    ap.add_argument("--only", choices=("ndvi", "focal"), default=None)
    ap.add_argument("--workdir", default=None, help="where the sources and outputs go (default: a temp dir)")
    ap.add_argument("--child-rioxarray", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_rioxarray:
        child_rioxarray(*args.child_rioxarray)
        return
    base = args.workdir or tempfile.mkdtemp(prefix="geoproc-bench-process-")
    os.makedirs(base, exist_ok=True)
    try:
        report: dict = {"cpus": os.cpu_count()}
        if args.only in (None, "ndvi"):
            src = os.path.join(base, f"s2_{args.size}.tif")
            if not os.path.exists(src):
                t = time.perf_counter()
                make_raster(src, args.size)
                print(f"scene {args.size}^2 x 4 uint16 written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            report["ndvi"] = {"size": args.size, **ndvi(src, base)}
        if args.only in (None, "focal"):
            dem = os.path.join(base, f"dem_{args.dem_size}.tif")
            if not os.path.exists(dem):
                t = time.perf_counter()
                make_dem(dem, args.dem_size)
                print(f"DEM {args.dem_size}^2 float32 written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            report["focal_mean"] = {"size": args.dem_size, **focal(dem, base, args.memory_limit, args.region_bytes)}
        print(json.dumps(report, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
