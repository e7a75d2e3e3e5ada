"""zarr_ingest benchmark: a 1.9 GB NetCDF-4 into Zarr v3, geoproc against xarray's to_zarr.

    python bench/zarr_ingest.py                          # the issue's case: 120 x 2048 x 2048 float32
    python bench/zarr_ingest.py --times 24 --size 1024   # quick

Generates a netCDF-4 file (time x lat x lon, float32, zlib, chunked one time step by 512 x 512), then
writes it as Zarr v3 with time = 1 and 256 x 256 chunks with each of:

* ``geoproc``  ``geoproc run zarr_ingest`` on a local cluster of 2 worker processes: one ledger task per
               region of whole chunks, written into a template, STAC item included;
* ``xarray``   ``xr.open_dataset(chunks=...).chunk(...).to_zarr(...)`` on Dask's threaded scheduler.

Peak memory is the RSS of each run's whole process tree, and of its largest single process (for geoproc a
worker, the driver or the scheduler). Target: geoproc no slower, with peak worker memory no higher than
xarray's route.
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


def make_netcdf(path: str, times: int, size: int) -> None:
    """Smooth fields that change with time, written one time step at a time."""
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", times)
        nc.createDimension("lat", size)
        nc.createDimension("lon", size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2000-01-01", "standard"
        t[:] = np.arange(times)
        la = nc.createVariable("lat", "f8", ("lat",))
        la.units = "degrees_north"
        la[:] = np.linspace(-60, 60, size)
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo.units = "degrees_east"
        lo[:] = np.linspace(-120, 120, size)
        v = nc.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, complevel=1,
                              chunksizes=(1, min(512, size), min(512, size)))
        v.units = "K"
        yy, xx = np.mgrid[0:size, 0:size].astype("float32")
        base = 280 + 10 * np.sin(xx / 97) * np.cos(yy / 131)
        for i in range(times):
            v[i] = base + np.float32(i % 12) + 0.001 * xx


def child_xarray(src: str, out: str) -> None:
    import dask
    import xarray as xr

    ds = xr.open_dataset(src, chunks={"time": 1, "lat": 512, "lon": 512})
    ds = ds.chunk({"time": 1, "lat": 256, "lon": 256})
    for v in ds.variables.values():
        v.encoding.pop("chunks", None)
        v.encoding.pop("preferred_chunks", None)
    with dask.config.set(scheduler="threads"):
        ds.to_zarr(out, mode="w", zarr_format=3, consolidated=False)
    print("BENCH {}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--times", type=int, default=120)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--child-xarray", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_xarray:
        child_xarray(*args.child_xarray)
        return
    base = args.workdir or tempfile.mkdtemp(prefix="geoproc-bench-zarr-")
    os.makedirs(base, exist_ok=True)
    try:
        src = os.path.join(base, f"tas_{args.times}x{args.size}.nc")
        if not os.path.exists(src):
            t = time.perf_counter()
            make_netcdf(src, args.times, args.size)
            print(f"netCDF-4 {os.path.getsize(src) / 2**30:.2f} GiB written in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        report: dict = {"times": args.times, "size": args.size, "netcdf_gib": round(os.path.getsize(src) / 2**30, 2),
                        "cpus": os.cpu_count()}
        out = os.path.join(base, "xarray.zarr")
        shutil.rmtree(out, ignore_errors=True)
        res = measure([sys.executable, __file__, "--child-xarray", src, out])
        report["xarray"] = {k: res[k] for k in ("wall_s", "peak_mib", "peak_process_mib")}
        print(f"xarray   {report['xarray']}", file=sys.stderr, flush=True)
        out = os.path.join(base, "geoproc.zarr")
        shutil.rmtree(out, ignore_errors=True)
        res = measure([sys.executable, "-m", "geoproc.cli", "run", "zarr_ingest", "--set", f"input={src}", "--set",
                       f"output={out}", "--cluster", "local", "--workers", "2", "--ledger",
                       f"sqlite:///{base}/ledger-{time.time_ns()}.db", "--json"])
        report["geoproc"] = {k: res[k] for k in ("wall_s", "peak_mib", "peak_process_mib")}
        print(f"geoproc  {report['geoproc']}", file=sys.stderr, flush=True)
        report["time_ratio_vs_xarray"] = round(report["geoproc"]["wall_s"] / report["xarray"]["wall_s"], 2)
        report["memory_ratio_vs_xarray"] = round(report["geoproc"]["peak_mib"] / max(1, report["xarray"]["peak_mib"]), 2)
        # the target compares one worker's peak with the xarray route's (one process)
        report["process_memory_ratio_vs_xarray"] = round(report["geoproc"]["peak_process_mib"]
                                                         / max(1, report["xarray"]["peak_process_mib"]), 2)
        print(json.dumps(report, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
