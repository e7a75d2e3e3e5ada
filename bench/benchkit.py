"""What the COG benchmarks share: the geoproc side of a run, as a child process of the benchmark."""

from __future__ import annotations

import json
import time


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
