"""Many rasters to COGs: the geoproc ``cog`` job over a directory vs ``rio cogeo create`` loops.

Generates ``--n`` rasters of ``--size`` x ``--size`` in a local directory (even ones 3-band uint8 RGB
imagery, odd ones 1-band float32 elevation with nodata; tiled 256, DEFLATE; generation is not timed),
then converts them all three ways, side by side in one run:

* geoproc:        ``geoproc.run("cog", input=DIR, output=OUT, tier="analysis", target_crs="keep",
                  gdal_threads=1, workers=2)`` on its own LocalCluster of 2 worker processes with
                  ``threads_per_worker=1`` (one worker per core). Its time covers everything: cluster
                  start-up, listing, validation, conversion, output checks, checksums, publishing and
                  the ledger; the cluster start-up is also reported on its own.
* rio sequential: one ``rio cogeo create`` after the other (``--threads ALL_CPUS``, rio-cogeo's default);
* rio 2-process:  two ``rio cogeo create`` at a time (like ``xargs -P 2``), ``--threads 1`` each.

rio-cogeo gets the settings geoproc's analysis tier uses: ``-p deflate --co ZLEVEL=6 --co PREDICTOR=2``
(3 for float32), ``--blocksize 512``, overview resampling ``cubic`` for RGB and ``average`` for
elevation. Every output of every variant is checked with ``cog_validate`` (untimed).
Targets: geoproc at most 0.6x the sequential loop and at most 1.05x the 2-process loop.

    .venv/bin/python bench/cog_container.py            # 32 rasters of 2048 x 2048
    .venv/bin/python bench/cog_container.py --n 8      # quick run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import child_geoproc
from cog import RIO, make_rgb, measured  # noqa: E402  (bench/cog.py, next to this file)

HERE = Path(__file__).resolve()


def make_dem(path: str, size: int, seed: int) -> None:
    """A float32 elevation-like raster with a nodata corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype("float32") / size
    z = 800 + 400 * np.sin(2 * np.pi * (2 + seed % 3) * x) * np.cos(2 * np.pi * 3 * y) + 150 * (x - y)
    z += rng.normal(0, 2.0, z.shape).astype("float32")
    z[: size // 8, : size // 8] = -9999
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32", "nodata": -9999,
               "crs": "EPSG:32633", "transform": from_origin(500_000 + seed * size * 10, 5_200_000, 10, 10),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z.astype("float32"), 1)


def generate(src_dir: Path, n: int, size: int) -> list[Path]:
    src_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = src_dir / f"r{i:03d}.tif"
        if not path.exists():
            if i % 2 == 0:
                make_rgb(str(path), size, seed=i)
            else:
                make_dem(str(path), size, seed=i)
        files.append(path)
    return files


def rio_cmd(src: Path, dst: Path, threads: str) -> list[str]:
    with rasterio.open(src) as ds:
        floaty = ds.dtypes[0].startswith("float")
    return [RIO, "cogeo", "create", str(src), str(dst), "-p", "deflate", "--co", "ZLEVEL=6",
            "--co", f"PREDICTOR={3 if floaty else 2}", "--blocksize", "512",
            "--overview-resampling", "average" if floaty else "cubic", "--threads", threads, "-q"]


def rio_loop(files: list[Path], out: Path, processes: int) -> float:
    out.mkdir()
    cmds = [rio_cmd(f, out / f.name, "ALL_CPUS" if processes == 1 else "1") for f in files]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(processes) as pool:
        for proc in pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), cmds):
            if proc.returncode:
                raise RuntimeError(f"{' '.join(proc.args)}: {proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def check_all(out: Path, n: int) -> str:
    from rio_cogeo.cogeo import cog_validate

    outs = sorted(out.glob("*.tif"))
    bad = [p.name for p in outs if not cog_validate(str(p), quiet=True)[0]]
    if len(outs) != n or bad:
        raise SystemExit(f"{out}: {len(outs)} outputs of {n}, invalid: {bad}")
    return f"{n} valid COGs, {sum(p.stat().st_size for p in outs) / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="number of rasters (default 32)")
    ap.add_argument("--size", type=int, default=2048, help="raster side in pixels (default 2048)")
    ap.add_argument("--workers", type=int, default=2, help="geoproc worker processes (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="geoproc gdal_threads per task (default 1)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--variants", default="geoproc,rio-seq,rio-2proc")
    ap.add_argument("--workdir", default=None, help="where sources and outputs go (default: a temp dir)")
    ap.add_argument("--child", nargs=3, metavar=("SRC_DIR", "OUT_DIR", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        child_geoproc(*args.child, workers=args.workers, threads=args.threads)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="geoproc-bench-container-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src_dir = work / f"src-{args.n}x{args.size}"
        t0 = time.perf_counter()
        files = generate(src_dir, args.n, args.size)
        print(f"{args.n} rasters of {args.size} x {args.size} in {src_dir} ({time.perf_counter() - t0:.1f} s); "
              f"{os.cpu_count()} CPUs; geoproc: {args.workers} workers, gdal_threads={args.threads}")
        for run in range(args.repeat):
            res: dict[str, dict] = {}
            for name in args.variants.split(","):
                out = work / f"{name}-{run}"
                if name == "geoproc":
                    ledger_dir = work / f"ledger-{run}"
                    ledger_dir.mkdir()
                    m = measured([sys.executable, str(HERE), "--workers", str(args.workers), "--threads",
                                  str(args.threads), "--child", str(src_dir), str(out), str(ledger_dir)])
                else:
                    m = {"wall": rio_loop(files, out, 1 if name == "rio-seq" else 2)}
                m["check"] = check_all(out, args.n)
                shutil.rmtree(out)
                res[name] = m
            report(res, run, args.repeat)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def report(res: dict[str, dict], run: int, repeat: int) -> None:
    print(f"\nrun {run + 1}/{repeat}")
    print(f"{'variant':<10} {'wall s':>8}  notes")
    for name, m in res.items():
        note = m["check"]
        if m.get("cluster_start") is not None:
            note += f"; cluster start {m['cluster_start']:.2f} s, peak {m['peak_rss'] / 2**20:.0f} MiB"
        print(f"{name:<10} {m['wall']:8.2f}  {note}")
    if {"geoproc", "rio-seq", "rio-2proc"} <= set(res):
        g, s, p = res["geoproc"]["wall"], res["rio-seq"]["wall"], res["rio-2proc"]["wall"]
        print(f"geoproc / sequential {g / s:.2f} (target <= 0.60: {'met' if g / s <= 0.6 else 'MISSED'}); "
              f"geoproc / 2-process {g / p:.2f} (target <= 1.05: {'met' if g / p <= 1.05 else 'MISSED'})")
        cs = res["geoproc"].get("cluster_start") or 0.0
        print(f"without cluster start-up: {(g - cs) / s:.2f} of sequential, {(g - cs) / p:.2f} of 2-process")


if __name__ == "__main__":
    main()
