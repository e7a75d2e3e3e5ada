"""What the benchmarks share: measuring a child process tree, and the geoproc side of a COG run."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping


def measure(cmd: list[str], *, env: Mapping[str, str] | None = None) -> dict:
    """Run ``cmd`` and sample the RSS of its whole process tree (driver, scheduler, workers) every 20 ms.

    Returns ``wall_s``, ``peak_mib`` (the tree's summed RSS at its highest), ``peak_process_mib`` (the
    largest RSS any one process of the tree reached: a worker's, the driver's or the scheduler's) and
    what the child printed on a ``BENCH {json}`` line, if any.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = one = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)] if p.is_running()]
            peak, one = max(peak, sum(rss)), max(one, *rss)
        except (psutil.Error, ValueError):
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{err[-3000:]}")
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), "BENCH {}")
    return {"wall_s": round(wall, 2), "peak_mib": peak >> 20, "peak_process_mib": one >> 20,
            **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in json.loads(line[6:]).items()}}


def child_geoproc(src: str, dst: str, workdir: str, workers: int | None, threads: int) -> None:
    """Convert ``src`` with the cog job on its own local cluster; print one ``BENCH {json}`` line.

    The figures: ``inner`` (whole run, cluster start included), ``cluster_start``, ``done`` and
    ``bytes_out``. The parent measures wall time and the process tree's memory around this.
    """
    import geoproc

    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def on_event(kind: str, data: dict) -> None:
        if kind == "cluster":
            marks["cluster"] = time.perf_counter() - t0

    res = geoproc.run("cog", input=src, output=dst, tier="analysis", target_crs="keep", gdal_threads=threads,
                      workers=workers, cluster="local", ledger=f"sqlite:///{workdir}/ledger.db", on_event=on_event)
    total = time.perf_counter() - t0
    if res.status != "completed":
        raise SystemExit(f"geoproc job {res.status}: {res.error} {json.dumps(res.result)[:2000]}")
    print("BENCH " + json.dumps({"inner": total, "cluster_start": marks.get("cluster"),
                                 "done": res.result["done"], "bytes_out": res.result["bytes_out"]}), flush=True)
