"""Per-tile reprojection: geoproc's ``warp_tile`` (GDAL's warper through rasterio) vs odc-geo's ``xr_reproject``.

The ``large_raster`` job reprojects tile by tile; this benchmark measures the two candidate ways of
computing one output tile, on the tiles of a real plan:

* geoproc:  :func:`geoproc.raster.warp.warp_tile` reads the tile's planned source window and runs
            GDAL's warper on it (``rasterio.warp.reproject``, one thread);
* odc-geo:  ``odc.geo.xr.xr_reproject`` of the source opened lazily with rioxarray (dask chunks of
            512 x 512, the synchronous scheduler so that both run on one thread), onto the tile's
            ``GeoBox``.

Source: a synthetic ``--size`` x ``--size`` x 3 uint8 raster in UTM 33N with nodata 0 (DEFLATE, 512
blocks; generated, not timed). Target: EPSG:3857, bilinear, ``--tile`` pixel tiles; half of the
``--tiles`` tiles computed are those nearest the centre, half the outermost ones (across the edge of
the source footprint). Prints the time of each tile both ways, the totals and
their ratio, and how far the two results are apart (pixels valid in both; share of pixels whose
validity differs).

    .venv/bin/python bench/tile_warp.py                  # 8000 x 8000 source, 4 tiles of 2048
    .venv/bin/python bench/tile_warp.py --size 4000 --tiles 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window


def make_raster(path: str, size: int) -> None:
    """Smooth gradients and waves, nodata 0 (values 1..255), written strip by strip."""
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", nodata=0,
                       crs="EPSG:32633", transform=from_origin(300000, 5600000, 10, 10), tiled=True,
                       blockxsize=512, blockysize=512, compress="DEFLATE") as dst:
        for r in range(0, size, 512):
            h = min(512, size - r)
            yy, xx = np.mgrid[r:r + h, 0:size].astype("float32")
            for b in range(3):
                v = 128 + 60 * np.sin(xx / (300.0 + 40 * b)) * np.cos(yy / 410.0) + 50 * (xx + yy) / (2 * size) - 25
                dst.write(np.clip(v, 1, 255).astype("uint8"), b + 1, window=Window(0, r, size, h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8000, help="source side in pixels (default 8000)")
    ap.add_argument("--tile", type=int, default=2048, help="output tile side (default 2048)")
    ap.add_argument("--tiles", type=int, default=4, help="tiles to compute (default 4)")
    args = ap.parse_args()

    import dask
    import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
    import rioxarray
    from affine import Affine
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_reproject

    from geoproc.raster.tiling import SourceInfo, TilingPlan
    from geoproc.raster.warp import warp_tile

    with tempfile.TemporaryDirectory(prefix="geoproc-bench-warp-") as tmp:
        src_path = os.path.join(tmp, "src.tif")
        make_raster(src_path, args.size)
        with rasterio.open(src_path) as src:
            plan = TilingPlan.build(SourceInfo.from_dataset(src, src_path), "EPSG:3857", tile_size=args.tile,
                                    resampling="bilinear", bands=[1, 2, 3])
        tiles = [t for t in plan.tiles() if t.src_window is not None]
        cr, cc = (max(t.row for t in tiles) + 1) / 2, (max(t.col for t in tiles) + 1) / 2
        by_distance = sorted(tiles, key=lambda t: (t.row + 0.5 - cr) ** 2 + (t.col + 0.5 - cc) ** 2)
        half = args.tiles // 2  # tiles inside the footprint, and tiles across its edge (partly no source)
        tiles = by_distance[:args.tiles - half] + by_distance[len(by_distance) - half:]
        print(f"source {args.size} x {args.size} x 3 uint8 (EPSG:32633) -> EPSG:3857 grid {plan.width} x {plan.height}, "
              f"{len(plan.tiles())} tiles of {plan.tile_size}; computing {len(tiles)}, one thread each way\n")
        print(f"{'tile':>8} {'geoproc s':>10} {'odc-geo s':>10} {'max |diff|':>11} {'mean |diff|':>12} {'validity differs':>17}")
        totals = {"geoproc": 0.0, "odc": 0.0}
        worst = 0.0
        for t in tiles:
            x, y, w, h = t.outer
            with rasterio.Env(GDAL_CACHEMAX=64 * 2**20), rasterio.open(src_path) as src:
                t0 = time.perf_counter()
                ours = warp_tile(src, bands=[1, 2, 3], src_window=t.src_window, dst_crs="EPSG:3857",
                                 dst_transform=t.transform, dst_shape=(h, w), resampling="bilinear", dst_nodata=0)
                t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            da = rioxarray.open_rasterio(src_path, chunks={"band": 3, "y": 512, "x": 512}, lock=False)
            gbox = GeoBox((h, w), Affine(*t.transform[:6]), "EPSG:3857")
            with dask.config.set(scheduler="synchronous"):
                theirs = xr_reproject(da, gbox, resampling="bilinear", dst_nodata=0).values
            t_odc = time.perf_counter() - t0
            both = (ours != 0) & (theirs != 0)
            diff = np.abs(ours.astype("int16") - theirs.astype("int16"))[both]
            mismatch = float(((ours != 0) != (theirs != 0)).mean())
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
            totals["geoproc"] += t_ours
            totals["odc"] += t_odc
            print(f"{t.key:>8} {t_ours:10.2f} {t_odc:10.2f} {diff.max() if diff.size else 0:11d} "
                  f"{diff.mean() if diff.size else 0:12.3f} {100 * mismatch:16.3f}%")
        ratio = totals["geoproc"] / totals["odc"]
        print(f"\ntotal: geoproc {totals['geoproc']:.2f} s, odc-geo {totals['odc']:.2f} s; geoproc / odc-geo {ratio:.2f}; "
              f"largest difference where both have data: {worst:g} (of 255)")


if __name__ == "__main__":
    main()
