"""Tiled reprojection benchmark: geoproc's large_raster (single COG) against GDAL's COG driver.

    python bench/tiled.py --size 16000 --bands 3 --workers 2      # the issue's full-size case
    python bench/tiled.py --size 4096 --workers 1 2                # quick, with scaling

Writes a synthetic uint8 UTM raster, then times (a) GDAL's COG driver with TARGET_SRS=EPSG:3857 and
(b) geoproc's large_raster job (mode=single) at each worker count, with the same resampling and
compression. Peak memory: GDAL's is this process's max RSS in a child; geoproc's is the sum of the
worker RSS peaks (sampled every 10 ms) plus the driver's. geoproc's cluster is started before its clock
starts (a running cluster, as in a notebook or on Kubernetes). Targets: ``speed_ratio_vs_gdal`` (GDAL's
time / geoproc's) at least 1 and ``memory_ratio_vs_gdal`` below 1; ``peak_worker_above_idle_mib`` stays
under ``memory_budget_mib``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time


def make_raster(path: str, size: int, bands: int) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=bands, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(300000, 5600000, 10, 10), nodata=0, tiled=True,
                       blockxsize=512, blockysize=512, compress="DEFLATE") as dst:
        for r in range(0, size, 512):
            h = min(512, size - r)
            yy, xx = np.mgrid[r:r + h, 0:size]
            for b in range(bands):
                dst.write(((xx // 7 + yy // 5 + 40 * b) % 250 + 1).astype("uint8"), b + 1, window=Window(0, r, size, h))


GDAL_CHILD = """
import resource, sys, time, rasterio, rasterio.shutil
src, dst = sys.argv[1], sys.argv[2]
t = time.perf_counter()
with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
    rasterio.shutil.copy(src, dst, driver="COG", TARGET_SRS="EPSG:3857", RESAMPLING="BILINEAR",
                         COMPRESS="DEFLATE", LEVEL="6", PREDICTOR="2", BLOCKSIZE="512",
                         OVERVIEW_RESAMPLING="NEAREST", NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def run_gdal(src: str, dst: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", GDAL_CHILD, src, dst], check=True, capture_output=True, text=True)
    wall, peak = out.stdout.split()
    return float(wall), int(peak)


def watch_rss() -> dict:
    """Sample this process's RSS every 10 ms in a daemon thread; ``state["peak"]`` holds the peak."""
    import psutil

    proc = psutil.Process()
    state = {"peak": proc.memory_info().rss, "idle": proc.memory_info().rss}

    def loop() -> None:
        while True:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.01)

    threading.Thread(target=loop, daemon=True).start()
    return state


def run_geoproc(src: str, out_dir: str, workers: int, budget: str) -> tuple[float, int, dict]:
    from dask.distributed import Client, LocalCluster

    import geoproc

    def start(dask_worker=None) -> int:
        dask_worker._bench_rss = watch_rss()
        return dask_worker._bench_rss["idle"]

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="8GiB") as cluster, Client(cluster) as client:
        idle = client.run(start)
        driver_rss = watch_rss()  # the driver, sampled the same way while the job runs
        t = time.perf_counter()
        res = geoproc.run("large_raster", cluster=client, ledger=f"sqlite:///{out_dir}/ledger.db", input=src,
                          output=os.path.join(out_dir, "out.tif"), target_crs="EPSG:3857",
                          reproject_resampling="bilinear", overview_resampling="nearest", memory_budget=budget,
                          gdal_threads=workers)
        wall = time.perf_counter() - t
        peaks = client.run(lambda dask_worker: dask_worker._bench_rss["peak"])
    if res.status != "completed":
        raise SystemExit(f"geoproc run failed: {res.error}")
    driver = driver_rss["peak"]
    above = max(peaks[a] - idle[a] for a in peaks)
    return wall, max(peaks.values()), {"workers_sum": sum(peaks.values()), "driver": driver,
                                       "plan": res.result["plan"], "above_idle": above}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=16000, help="raster side in pixels")
    ap.add_argument("--bands", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[2], help="geoproc worker counts to time")
    ap.add_argument("--memory-budget", default="512MiB", help="large_raster memory_budget per tile task")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one, removed)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="geoproc-bench-") as d:
        src = os.path.join(d, "src.tif")
        # in a child process: the arrays that generate the source do not stay in this process's heap,
        # which is the geoproc driver whose memory is measured
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                        f"from tiled import make_raster; make_raster({src!r}, {args.size}, {args.bands})"], check=True)
        report = {"size": args.size, "bands": args.bands, "raster_bytes": args.size ** 2 * args.bands}
        g_wall, g_peak = run_gdal(src, os.path.join(d, "gdal.tif"))
        report["gdal"] = {"wall_s": round(g_wall, 2), "peak_rss_mib": g_peak >> 20}
        for n in args.workers:
            sub = os.path.join(d, f"geoproc{n}")
            os.makedirs(sub)
            wall, peak, extra = run_geoproc(src, sub, n, args.memory_budget)
            report[f"geoproc_{n}w"] = {"wall_s": round(wall, 2), "peak_worker_rss_mib": peak >> 20,
                                       "peak_worker_above_idle_mib": extra["above_idle"] >> 20,
                                       "memory_budget_mib": extra["plan"]["memory_budget"] >> 20,
                                       "planned_memory_per_task_mib": extra["plan"]["memory_per_task"] >> 20,
                                       "sum_worker_rss_mib": extra["workers_sum"] >> 20,
                                       "tiles": extra["plan"]["tiles"], "tile_size": extra["plan"]["tile_size"],
                                       "driver_rss_mib": extra["driver"] >> 20,
                                       "speed_ratio_vs_gdal": round(g_wall / wall, 2),
                                       "memory_ratio_vs_gdal": round((extra["workers_sum"] + extra["driver"]) / g_peak, 2)}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
