"""Write benchmark: NDVI of a 4-band uint16 raster into a COG and into Zarr, geoproc against its peers.

    python bench/write.py                       # the issue's case: 16,000 x 16,000, all five variants
    python bench/write.py --size 4096           # quick
    pip install -e .[bench]                     # tifffile + imagecodecs, which odc-geo's writer needs

Generates a 4-band uint16 raster (tiled 512, DEFLATE; bands blue, green, red, nir) and computes
NDVI = (nir - red) / (nir + red) as float32 (NaN where red is nodata) with each of:

* ``geoproc-cog``    ``geoproc.write(ndvi, "x.tif", format="cog")``: region tasks on a local cluster of
                     worker processes, parts assembled with overviews, validated, checksummed, ledgered;
* ``rioxarray``      rioxarray + Dask ``to_raster`` (tiled, with a lock), then ``rio cogeo create``;
* ``odc-geo``        odc-geo's ``save_cog_with_dask``;
* ``geoproc-zarr``   ``geoproc.write(ndvi, "x.zarr")``: one ledger task per region of whole chunks;
* ``xarray-zarr``    xarray's ``to_zarr`` of the same computation.

All COGs are DEFLATE with predictor 3 and 512 blocks, with average overviews. The peers run on Dask's
threaded scheduler in one process; geoproc starts its own cluster (its start-up is inside its time).
Each variant runs in a child process; the parent samples the RSS of the child and all its descendants
(driver + workers) every 20 ms, so ``peak_mib`` is the whole run's peak memory. The ratios compare
geoproc's COG with each COG peer, and geoproc's Zarr with ``to_zarr`` (targets: COG faster than both
COG peers at no more than the lower of their peak memories; Zarr within 1.1x of ``to_zarr``'s time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

from benchkit import measure

VARIANTS = ("geoproc-cog", "rioxarray", "odc-geo", "geoproc-zarr", "xarray-zarr")


def make_raster(path: str, size: int) -> None:
    """4 bands uint16 (blue, green, red, nir), nodata 0 in one corner, written strip by strip."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=4, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(300000, 5600000, 10, 10), nodata=0, tiled=True,
                       blockxsize=512, blockysize=512, compress="DEFLATE", BIGTIFF="IF_SAFER") as dst:
        dst.descriptions = ("blue", "green", "red", "nir")
        for r in range(0, size, 512):
            h = min(512, size - r)
            yy, xx = np.mgrid[r:r + h, 0:size]
            for b in range(4):
                data = ((xx // 3 + yy // 5) * (b + 1) + 997 * b) % 4000 + 1
                if r < size // 8:
                    data[:, : size // 8] = 0
                dst.write(data.astype("uint16"), b + 1, window=Window(0, r, size, h))


def ndvi_of(a):  # noqa: ANN001, ANN201 - a DataArray of bands (blue, green, red, nir)
    red, nir = a.sel(band=3 if 3 in a.band.values else "red"), a.sel(band=4 if 4 in a.band.values else "nir")
    out = ((nir.astype("float32") - red.astype("float32")) / (nir.astype("float32") + red.astype("float32")))
    out = out.where(red != 0).astype("float32")
    out.attrs = {}
    return out.rio.write_nodata(float("nan"))


def child(variant: str, src: str, work: str) -> None:
    """Run one variant in this process; print ``BENCH {json}``."""
    import dask
    import rioxarray

    t0 = time.perf_counter()
    extra: dict = {}
    if variant.startswith("geoproc"):
        import geoproc

        ndvi = ndvi_of(geoproc.open(src, chunks=512))
        fmt = "cog" if variant == "geoproc-cog" else "zarr"
        out = os.path.join(work, "geoproc.tif" if fmt == "cog" else "geoproc.zarr")
        res = geoproc.write(ndvi, out, format=fmt, cluster="local", ledger=f"sqlite:///{work}/ledger.db")
        if res.status != "completed":
            raise SystemExit(f"geoproc write {res.status}: {res.error}")
        extra = {"regions": next(s.total for s in res.stages if s.name == "regions")}
    elif variant == "rioxarray":
        from rio_cogeo.cogeo import cog_translate
        from rio_cogeo.profiles import cog_profiles

        a = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 512, "x": 512}, lock=False)
        ndvi = ndvi_of(a)
        tmp = os.path.join(work, "rioxarray-tmp.tif")
        with dask.config.set(scheduler="threads"):
            ndvi.rio.to_raster(tmp, tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE", predictor=3,
                               lock=threading.Lock(), BIGTIFF="IF_SAFER")
        profile = {**cog_profiles.get("deflate"), "predictor": 3, "blockxsize": 512, "blockysize": 512}
        cog_translate(tmp, os.path.join(work, "rioxarray.tif"), profile, overview_resampling="average",
                      quiet=True, config={"GDAL_NUM_THREADS": "ALL_CPUS"})
        os.remove(tmp)
    elif variant == "odc-geo":
        from odc.geo.cog import save_cog_with_dask

        a = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 512, "x": 512}, lock=False)
        with dask.config.set(scheduler="threads"):
            save_cog_with_dask(ndvi_of(a), os.path.join(work, "odc.tif"), compression="deflate", predictor=3,
                               blocksize=512, overview_resampling="average").compute()
    elif variant == "xarray-zarr":
        a = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 512, "x": 512}, lock=False)
        ds = ndvi_of(a).drop_vars("band", errors="ignore").to_dataset(name="data")
        with dask.config.set(scheduler="threads"):
            ds.to_zarr(os.path.join(work, "xarray.zarr"), mode="w", zarr_format=3, consolidated=False)
    else:
        raise SystemExit(f"unknown variant {variant}")
    print("BENCH " + json.dumps({"inner_s": time.perf_counter() - t0, **extra}), flush=True)


def run_variant(variant: str, src: str, work: str) -> dict:
    """Run ``variant`` in a child process and sample the RSS of its whole process tree (in a fresh
    directory: a ledger left by an earlier run would make geoproc's job a cached no-op)."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return measure([sys.executable, __file__, "--child", variant, src, work])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16_000, help="raster side in pixels (default 16000)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workdir", default=None, help="where the source and outputs go (default: a temp dir)")
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "SRC", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    base = args.workdir or tempfile.mkdtemp(prefix="geoproc-bench-write-")
    try:
        src = os.path.join(base, f"s2_{args.size}.tif")
        if not os.path.exists(src):
            t = time.perf_counter()
            make_raster(src, args.size)
            print(f"source {args.size} x {args.size} x 4 uint16 written in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        report: dict = {"size": args.size, "cpus": os.cpu_count()}
        for v in args.variants.split(","):
            report[v] = run_variant(v, src, os.path.join(base, v))
            print(f"{v:14s} {report[v]}", file=sys.stderr, flush=True)
        cog = report.get("geoproc-cog")
        for peer in ("rioxarray", "odc-geo"):
            if cog and peer in report:
                report[f"cog_time_ratio_vs_{peer}"] = round(cog["wall_s"] / report[peer]["wall_s"], 2)
                report[f"cog_memory_ratio_vs_{peer}"] = round(cog["peak_mib"] / max(1, report[peer]["peak_mib"]), 2)
        if "geoproc-zarr" in report and "xarray-zarr" in report:
            report["zarr_time_ratio_vs_to_zarr"] = round(report["geoproc-zarr"]["wall_s"]
                                                         / report["xarray-zarr"]["wall_s"], 2)
        print(json.dumps(report, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
