"""Benchmark: summarize a container of many small blobs with geoproc vs a plain adlfs listing loop.

Creates ``--count`` blobs (several counts: repeat the option) in a private Azurite, or in a local
directory with ``--local DIR``, spread over ``YYYY/MM/DD/`` prefixes with a few extensions. Then, for
each count, runs in separate processes:

* geoproc: ``summarize_container`` on a LocalCluster of ``--workers`` processes;
* plain:   one thread, ``fs.find(detail=True)`` with adlfs (or the local filesystem), summing up.

and prints wall time, peak memory (RSS) of the driver and of each worker, and the ratio. The driver
column should not grow from one count to the next: the driver holds summaries, never a listing.

    python bench/inventory.py --count 10000 --count 100000
    python bench/inventory.py --count 20000 --local /tmp/geoproc-bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
EXTS = (".tif", ".tif", ".tif", ".json", ".xml", ".txt")


def blob_names(count: int):
    """Deterministic names and sizes: about 100 blobs per day prefix."""
    for i in range(count):
        day = i // 100
        name = f"{2020 + day // 336}/{(day // 28) % 12 + 1:02d}/{day % 28 + 1:02d}/tile_{i:07d}{EXTS[i % len(EXTS)]}"
        yield name, 1 + (i * 7919) % 4096


def rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- set-up --------------------------------------------------------------------------------------------


def start_azurite(location: str) -> tuple[subprocess.Popen, str]:
    exe = ROOT / "node_modules/.bin/azurite-blob"
    p = subprocess.Popen([str(exe), "--blobHost", "127.0.0.1", "--blobPort", "0", "--skipApiVersionCheck", "--loose",
                          "--disableTelemetry", "--silent", "--inMemoryPersistence"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=location)
    deadline = time.time() + 30
    while time.time() < deadline:
        m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", p.stdout.readline())
        if m:
            cs = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                  f"BlobEndpoint=http://127.0.0.1:{m.group(1)}/{ACCOUNT};")
            return p, cs
    p.kill()
    raise SystemExit("azurite did not start (run `npm install azurite` in the project root)")


async def _upload(cs: str, container: str, count: int, concurrency: int = 64) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(cs) as svc:
        cc = svc.get_container_client(container)
        await cc.create_container()
        names = iter(blob_names(count))

        async def worker() -> None:
            for name, size in names:  # the shared iterator hands each name to one worker
                await cc.upload_blob(name, b"x" * size)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def create(count: int, cs: str | None, local: str | None) -> str:
    """Create the data set; returns the source URL."""
    t0 = time.perf_counter()
    if local:
        root = Path(local) / f"bench-{count}"
        if not root.exists():
            for name, size in blob_names(count):
                p = root / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"x" * size)
        src = str(root)
    else:
        container = f"bench-{count}"
        asyncio.run(_upload(cs, container, count))
        src = f"az://{container}"
    print(f"created {count:,} blobs in {time.perf_counter() - t0:.1f} s -> {src}", flush=True)
    return src


# --- the two contenders (each in its own process) ----------------------------------------------------------


def run_plain(source: str) -> dict:
    """The loop everyone writes first: list everything with adlfs, then add it up, one thread."""
    import fsspec

    from geoproc.inventory.summary import bucket_of, extension_of

    if source.startswith("az://"):
        from adlfs import AzureBlobFileSystem

        fs, root = AzureBlobFileSystem(connection_string=os.environ["AZURE_STORAGE_CONNECTION_STRING"]), source[5:]
    else:
        fs, root = fsspec.filesystem("file"), source
    base = rss_mb()
    t0 = time.perf_counter()
    files = total = 0
    by_ext: dict[str, int] = {}
    buckets: dict[str, int] = {}
    for path, info in fs.find(root, detail=True).items():
        files += 1
        total += info["size"]
        by_ext[extension_of(path)] = by_ext.get(extension_of(path), 0) + 1
        buckets[bucket_of(info["size"])] = buckets.get(bucket_of(info["size"]), 0) + 1
    return {"wall": time.perf_counter() - t0, "files": files, "bytes": total, "driver_base": base,
            "driver_peak": rss_mb(), "workers": []}


def run_geoproc(source: str, workers: int) -> dict:
    import psutil
    from distributed import Client, LocalCluster

    import geoproc

    t_start = time.perf_counter()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AZURE_")}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    os.environ.update(saved)  # the driver resolves credentials; workers get them with each task
    client = Client(cluster)
    # A running cluster has its imports loaded; count start-up separately from the job.
    client.run(_warm_up)
    _warm_up()
    startup = time.perf_counter() - t_start
    proc = psutil.Process()
    base = proc.memory_info().rss / 2**20
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tmp = tempfile.mkdtemp(prefix="geoproc-bench-ledger-")
    t0 = time.perf_counter()
    res = geoproc.run("summarize_container", input=source, cluster=client, ledger=f"sqlite:///{tmp}/l.db")
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    worker_peaks = sorted(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024).values())
    client.close()
    cluster.close()
    shutil.rmtree(tmp, ignore_errors=True)
    s = res.result["summary"]
    return {"wall": wall, "files": s["files"], "bytes": s["bytes"], "driver_base": base, "driver_peak": peak[0],
            "workers": worker_peaks, "shards": res.result["shards"], "status": res.status, "startup": startup}


def _warm_up() -> None:
    import adlfs  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import rasterio  # noqa: F401

    import geoproc.jobs.inventory  # noqa: F401


def child(kind: str, source: str, workers: int) -> None:
    out = run_plain(source) if kind == "plain" else run_geoproc(source, workers)
    print("RESULT " + json.dumps(out), flush=True)


def measure(kind: str, source: str, workers: int, env: dict) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", kind, "--source", source, "--workers", str(workers)],
                       capture_output=True, text=True, env=env)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} run failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return json.loads(line[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, action="append", help="blobs to create and list (repeatable)")
    ap.add_argument("--local", help="use this local directory instead of Azurite")
    ap.add_argument("--workers", type=int, default=2, help="geoproc worker processes")
    ap.add_argument("--child", choices=("plain", "geoproc"), help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.source, a.workers)
    counts = a.count or [10_000, 100_000]
    env = dict(os.environ)
    azurite = None
    tmp = tempfile.mkdtemp(prefix="geoproc-bench-")
    try:
        if not a.local:
            azurite, cs = start_azurite(tmp)
            env["AZURE_STORAGE_CONNECTION_STRING"] = cs
        rows = []
        for count in counts:
            source = create(count, env.get("AZURE_STORAGE_CONNECTION_STRING"), a.local)
            plain = measure("plain", source, a.workers, env)
            geo = measure("geoproc", source, a.workers, env)
            assert (plain["files"], plain["bytes"]) == (geo["files"], geo["bytes"]) == (count, plain["bytes"]), \
                (plain, geo)
            rows.append((count, plain, geo))
            print(f"{count:,} blobs: plain {plain['wall']:.2f} s, geoproc {geo['wall']:.2f} s "
                  f"({geo['shards']} shards; cluster start-up {geo['startup']:.1f} s not included)", flush=True)
        backend = "local filesystem" if a.local else "Azurite"
        print(f"\nsummarize_container vs plain adlfs loop on {backend}, {a.workers} geoproc workers, "
              f"{os.cpu_count()} CPUs")
        print(f"{'blobs':>9} | {'plain s':>8} | {'geoproc s':>9} | {'speed-up':>8} | {'plain peak MiB':>14} | "
              f"{'driver base/peak MiB':>20} | workers peak MiB")
        for count, plain, geo in rows:
            print(f"{count:>9,} | {plain['wall']:>8.2f} | {geo['wall']:>9.2f} | {plain['wall'] / geo['wall']:>7.2f}x | "
                  f"{plain['driver_peak']:>14.0f} | {geo['driver_base']:>9.0f} / {geo['driver_peak']:<8.0f} | "
                  f"{', '.join(f'{w:.0f}' for w in geo['workers'])}")
    finally:
        if azurite is not None:
            azurite.terminate()
            azurite.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
