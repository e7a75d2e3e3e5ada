"""One large raster to a COG: geoproc vs ``rio cogeo create`` vs GDAL's COG driver, side by side.

Generates a synthetic ``--size`` x ``--size`` x 3 uint8 raster (smooth gradients and waves plus noise,
EPSG:32633, 256 x 256 tiles, DEFLATE; generation is not timed), then converts it three ways, each in a
subprocess of its own whose whole process tree is sampled every 50 ms (sum of RSS; peak reported):

* geoproc:  ``geoproc.run("cog", tier="analysis", target_crs="keep")`` on its own LocalCluster of worker
            processes (started inside the timed subprocess, so the time includes cluster start-up,
            validation, conversion, the output checks, the sha256 and the publish; the cluster start-up
            is also reported on its own). Worker processes are in the sampled tree.
* rio-cogeo: ``rio cogeo create SRC DST -p deflate --co ZLEVEL=6 --co PREDICTOR=2 --blocksize 512
            --overview-resampling cubic --threads ALL_CPUS -q``
* gdal-cog: ``rasterio.shutil.copy(SRC, DST, driver="COG", COMPRESS="DEFLATE", LEVEL=6, PREDICTOR="YES",
            BLOCKSIZE=512, OVERVIEW_RESAMPLING="CUBIC", NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")``

All three: DEFLATE level 6, horizontal predictor, 512 x 512 blocks, cubic overviews halving until the
long side fits in one block, same CRS. Every output is checked with ``cog_validate`` (untimed).
Targets: geoproc's wall time no more than the faster of rio-cogeo and gdal-cog, and its peak memory
no more than rio-cogeo's.

    .venv/bin/python bench/cog.py                 # 12,000 x 12,000 x 3
    .venv/bin/python bench/cog.py --size 3000     # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio
from benchkit import child_geoproc
from rasterio.transform import from_origin

HERE = Path(__file__).resolve()
RIO = str(Path(sys.executable).with_name("rio"))
SAMPLE_EVERY = 0.05


# --- measuring -----------------------------------------------------------------------------------------


def measured(cmd: list[str], *, env: dict | None = None, cwd: str | None = None) -> dict:
    """Run ``cmd``; wall time, CPU time and peak RSS (summed over the process and all its descendants).

    CPU time (user + system of the whole tree, from ``RUSAGE_CHILDREN``) is reported because the
    machine may be shared: it is less sensitive to other load than wall time.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        peak = peak_procs = 0
        while True:
            total, n = 0, 0
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                try:
                    total += p.memory_info().rss
                    n += 1
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            peak = max(peak, total)
            peak_procs = max(peak_procs, n)
            if proc.poll() is not None:
                break
            time.sleep(SAMPLE_EVERY)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    info = {}
    for line in stdout.splitlines():
        if line.startswith("BENCH "):
            info = json.loads(line[6:])
    return {"wall": wall, "cpu": cpu, "peak_rss": peak, "procs": peak_procs, **info}


def check_cog(path: str) -> str:
    from rio_cogeo.cogeo import cog_validate

    ok, errors, _ = cog_validate(path, quiet=True)
    if not ok:
        raise SystemExit(f"{path} is not a valid COG: {errors}")
    with rasterio.open(path) as ds:
        return f"valid COG, {os.path.getsize(path) / 2**20:.1f} MiB, overviews {ds.overviews(1)}"


# --- the source ----------------------------------------------------------------------------------------


def make_rgb(path: str, size: int, *, bands: int = 3, seed: int = 0, compress: str = "deflate",
             block: int = 256) -> None:
    """A ``size`` x ``size`` uint8 RGB GeoTIFF: gradients, waves and noise, written strip by strip."""
    rng = np.random.default_rng(seed)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": bands, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5_200_000, 10, 10), "tiled": True,
               "blockxsize": block, "blockysize": block, "interleave": "pixel", "photometric": "RGB" if bands == 3 else "MINISBLACK"}
    if compress != "none":
        profile["compress"] = compress
    x = np.linspace(0.0, 1.0, size, dtype="float32")[None, :]
    strip = 512
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            rows = min(strip, size - r0)
            y = (np.arange(r0, r0 + rows, dtype="float32") / size)[:, None]
            out = np.empty((bands, rows, size), dtype="uint8")
            for b in range(bands):
                base = 90 + 70 * (x * (1 - b * 0.3) + y * (0.5 + b * 0.2))
                base = base + 35 * np.sin(2 * np.pi * (6 + b) * x + 3 * y) * np.cos(2 * np.pi * (4 + b) * y)
                base = base + 12 * np.sin(2 * np.pi * 80 * (x + y))  # fields / texture
                noise = rng.normal(0.0, 5.0, size=(rows, size)).astype("float32")
                out[b] = np.clip(base + noise, 0, 255).astype("uint8")
            dst.write(out, window=((r0, r0 + rows), (0, size)))


# --- the variants (each runs in a subprocess of its own) -------------------------------------------------


def child_gdal(src: str, dst: str) -> None:
    import rasterio.shutil

    t0 = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        rasterio.shutil.copy(src, dst, driver="COG", COMPRESS="DEFLATE", LEVEL=6, PREDICTOR="YES", BLOCKSIZE=512,
                             OVERVIEW_RESAMPLING="CUBIC", NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
    print("BENCH " + json.dumps({"inner": time.perf_counter() - t0}), flush=True)


def rio_cmd(src: str, dst: str) -> list[str]:
    return [RIO, "cogeo", "create", src, dst, "-p", "deflate", "--co", "ZLEVEL=6", "--co", "PREDICTOR=2",
            "--blocksize", "512", "--overview-resampling", "cubic", "--threads", "ALL_CPUS", "-q"]


def run_variant(name: str, src: str, work: Path, args: argparse.Namespace, run: int) -> dict:
    out_dir = work / f"{name}-{run}"
    out_dir.mkdir()
    dst = str(out_dir / "out.tif")
    py = [sys.executable, str(HERE)]
    if name == "geoproc":
        cmd = py + ["--child", "geoproc", src, dst, str(out_dir), "--threads", str(args.threads)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
    elif name == "rio-cogeo":
        cmd = rio_cmd(src, dst)
    else:
        cmd = py + ["--child", "gdal-cog", src, dst, str(out_dir)]
    m = measured(cmd)
    m["check"] = check_cog(dst)
    m["size"] = os.path.getsize(dst)
    if not args.keep:
        shutil.rmtree(out_dir)
    return m


def table(results: dict[str, dict]) -> None:
    print(f"\n{'variant':<10} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9} {'procs':>5}  notes")
    for name, m in results.items():
        note = m["check"]
        if m.get("cluster_start") is not None:
            note += f"; cluster start {m['cluster_start']:.2f} s"
        print(f"{name:<10} {m['wall']:8.2f} {m['cpu']:7.2f} {m['peak_rss'] / 2**20:9.0f} {m['procs']:5d}  {note}")


def verdict(results: dict[str, dict]) -> None:
    g, r, d = results["geoproc"], results["rio-cogeo"], results["gdal-cog"]
    fastest = min(r["wall"], d["wall"])
    t_ratio = g["wall"] / fastest
    m_ratio = g["peak_rss"] / r["peak_rss"]
    print(f"time:   geoproc / rio-cogeo {g['wall'] / r['wall']:.2f}, geoproc / gdal-cog {g['wall'] / d['wall']:.2f}, "
          f"geoproc / faster {t_ratio:.2f} (target <= 1.00: {'met' if t_ratio <= 1.0 else 'MISSED'})")
    if g.get("cluster_start") is not None:
        print(f"        without cluster start-up: {(g['wall'] - g['cluster_start']) / fastest:.2f}")
    print(f"memory: geoproc / rio-cogeo {m_ratio:.2f} (target <= 1.00: {'met' if m_ratio <= 1.0 else 'MISSED'}), "
          f"geoproc / gdal-cog {g['peak_rss'] / d['peak_rss']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=12_000, help="raster side in pixels (default 12000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each variant (interleaved)")
    ap.add_argument("--workers", type=int, default=None, help="geoproc worker processes (default: geoproc's)")
    ap.add_argument("--threads", type=int, default=2, help="geoproc gdal_threads per task (default 2)")
    ap.add_argument("--src-compress", default="deflate", help="source compression (deflate, lzw, none)")
    ap.add_argument("--variants", default="geoproc,rio-cogeo,gdal-cog")
    ap.add_argument("--workdir", default=None, help="where the source and outputs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the outputs")
    ap.add_argument("--child", nargs=4, metavar=("VARIANT", "SRC", "DST", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        variant, src, dst, workdir = args.child
        if variant == "geoproc":
            child_geoproc(src, dst, workdir, args.workers, args.threads)
        else:
            child_gdal(src, dst)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="geoproc-bench-cog-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src = str(work / f"source-{args.size}.tif")
        if not os.path.exists(src):
            t0 = time.perf_counter()
            make_rgb(src, args.size, compress=args.src_compress)
            print(f"generated {src} ({os.path.getsize(src) / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
        print(f"{args.size} x {args.size} x 3 uint8, source {args.src_compress}; {os.cpu_count()} CPUs; "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
        variants = args.variants.split(",")
        for run in range(args.repeat):
            results = {name: run_variant(name, src, work, args, run) for name in variants}
            print(f"\nrun {run + 1}/{args.repeat}")
            table(results)
            if set(results) >= {"geoproc", "rio-cogeo", "gdal-cog"}:
                verdict(results)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
