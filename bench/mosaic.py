"""mosaic benchmark: 64 UTM tiles into one EPSG:3857 COG, geoproc against GDAL.

    python bench/mosaic.py                        # the issue's case: 64 tiles of 2,048 x 2,048 x 3 uint8
    python bench/mosaic.py --grid 4 --tile 1024   # quick

Generates an 8 x 8 grid of adjacent RGB tiles (UTM 33N, 10 m, tiled 512, DEFLATE), then makes one
EPSG:3857 COG of them with each of:

* ``gdal``     ``gdalbuildvrt`` + ``gdal_translate -of COG -co TARGET_SRS=EPSG:3857 -co NUM_THREADS=ALL_CPUS``
               (Debian's ``gdal-bin``), timed and measured as the two commands together;
* ``geoproc``  ``geoproc run mosaic --set input=tiles/ --set crs=EPSG:3857`` on a local cluster of 2
               worker processes, at the resolution GDAL chose: region tasks that each read only the tiles
               reaching them, the COG assembled with overviews, validated, checksummed, ledgered.

Both write DEFLATE with a predictor, 512-pixel blocks and average overviews, nearest-neighbour
resampling. Peak memory is the RSS of each command's whole process tree (driver, scheduler, workers).
Target: geoproc faster than GDAL on 2 workers, at lower peak memory.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

from benchkit import measure


def make_tiles(directory: str, grid: int, tile: int) -> None:
    """``grid`` x ``grid`` adjacent RGB tiles of ``tile`` pixels: smooth colour fields with edges."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    os.makedirs(directory, exist_ok=True)
    yy, xx = np.mgrid[0:tile, 0:tile]
    for i in range(grid):
        for j in range(grid):
            gy, gx = yy + i * tile, xx + j * tile
            rgb = np.stack([(gx // 7) % 256, (gy // 5) % 256, ((gx + gy) // 40 % 2) * 180 + 40]).astype("uint8")
            with rasterio.open(os.path.join(directory, f"tile_{i:02d}_{j:02d}.tif"), "w", driver="GTiff",
                               width=tile, height=tile, count=3, dtype="uint8", crs="EPSG:32633",
                               transform=from_origin(400000 + j * tile * 10, 5300000 - i * tile * 10, 10, 10),
                               tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE", photometric="RGB") as dst:
                dst.write(rgb)


def gdal(tiles: list[str], work: str) -> tuple[dict, float]:
    """gdalbuildvrt + gdal_translate to a COG in EPSG:3857; the figures and the resolution GDAL chose."""
    import rasterio

    vrt, out = os.path.join(work, "tiles.vrt"), os.path.join(work, "gdal.tif")
    a = measure(["gdalbuildvrt", "-q", vrt, *tiles])
    b = measure(["gdal_translate", "-q", "-of", "COG", "-co", "TARGET_SRS=EPSG:3857", "-co", "NUM_THREADS=ALL_CPUS",
                 "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=YES", "-co", "BLOCKSIZE=512", "-co",
                 "OVERVIEW_RESAMPLING=AVERAGE", "-co", "BIGTIFF=IF_SAFER", vrt, out])
    with rasterio.open(out) as ds:
        res, shape = ds.res[0], (ds.width, ds.height)
    return {"wall_s": round(a["wall_s"] + b["wall_s"], 2), "peak_mib": max(a["peak_mib"], b["peak_mib"]),
            "shape": shape}, res


def geoproc(directory: str, work: str, resolution: float) -> dict:
    out = os.path.join(work, "geoproc.tif")
    res = measure([sys.executable, "-m", "geoproc.cli", "run", "mosaic", "--set", f"input={directory}", "--set",
                   "crs=EPSG:3857", "--set", f"resolution={resolution!r}", "--set", f"output={out}",
                   "--cluster", "local", "--workers", "2", "--ledger", f"sqlite:///{work}/ledger-{time.time_ns()}.db",
                   "--set", "overwrite=true", "--json"])
    import rasterio

    with rasterio.open(out) as ds:
        shape = (ds.width, ds.height)
    return {"wall_s": res["wall_s"], "peak_mib": res["peak_mib"], "shape": shape}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=8, help="tiles per side (default 8: 64 tiles)")
    ap.add_argument("--tile", type=int, default=2048, help="tile side in pixels (default 2048)")
    ap.add_argument("--workdir", default=None, help="where the tiles and outputs go (default: a temp dir)")
    args = ap.parse_args()
    if not shutil.which("gdal_translate"):
        raise SystemExit("GDAL's command-line tools are missing: apt-get install gdal-bin")
    base = args.workdir or tempfile.mkdtemp(prefix="geoproc-bench-mosaic-")
    os.makedirs(base, exist_ok=True)
    try:
        tiles_dir = os.path.join(base, f"tiles_{args.grid}x{args.tile}")
        if not os.path.isdir(tiles_dir):
            t = time.perf_counter()
            make_tiles(tiles_dir, args.grid, args.tile)
            print(f"{args.grid ** 2} tiles of {args.tile}^2 x 3 uint8 written in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        tiles = sorted(glob.glob(os.path.join(tiles_dir, "*.tif")))
        report: dict = {"tiles": len(tiles), "tile": args.tile, "cpus": os.cpu_count()}
        report["gdal"], resolution = gdal(tiles, base)
        print(f"gdal     {report['gdal']}", file=sys.stderr, flush=True)
        os.remove(os.path.join(base, "gdal.tif"))
        report["geoproc"] = geoproc(tiles_dir, base, resolution)
        print(f"geoproc  {report['geoproc']}", file=sys.stderr, flush=True)
        report["resolution"] = resolution
        report["time_ratio_vs_gdal"] = round(report["geoproc"]["wall_s"] / report["gdal"]["wall_s"], 2)
        report["memory_ratio_vs_gdal"] = round(report["geoproc"]["peak_mib"] / max(1, report["gdal"]["peak_mib"]), 2)
        print(json.dumps(report, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
