"""Soak: a mixed workload under random worker kills and storage outages, checked against clean runs.

Each round runs three jobs on one 2-worker LocalCluster: ``hello_world``, ``cog`` over an Azurite
container (a new output prefix per round) and ``stac_catalog`` of the same container into a static
catalog (a new catalog per round). While each job runs, a seeded RNG may inject one fault: SIGKILL of a
Dask worker process, or an Azurite outage of a few seconds (stopped, then restarted on the same port
with the same data). A job that does not end ``completed`` is run again (``geoproc retry`` for one that
ended ``completed_with_errors``) until it does. Then every output is compared with a clean reference run
of the same job, made before any fault.

    .venv/bin/python bench/soak.py [--rounds 6] [--seed 7] [--files 12]

Figures: jobs, runs, tasks run, faults injected by kind, tasks recomputed (a task COMPLETED in the
ledger that ran again in a later run), outputs lost (target 0) and mismatches against the clean run
(target 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "soak"


# --- Azurite that can go down and come back -------------------------------------------------------


class Azurite:
    def __init__(self, location: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.location, self.proc = location, None
        self.connection_string = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                                  f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(ROOT / "node_modules/.bin/azurite-blob"), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--location", str(self.location), "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if re.search(r"listens on http://127\.0\.0\.1:\d+", line):
                return
            if self.proc.poll() is not None:
                break
        raise RuntimeError("azurite did not start (run setup.sh: npm install azurite)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


# --- inputs ------------------------------------------------------------------------------------------


def write_inputs(fs, n: int, workdir: Path) -> None:
    import rasterio
    from rasterio.transform import from_bounds

    fs.mkdir(CONTAINER)
    for i in range(n):
        w, h = 256 + 32 * (i % 4), 256 + 64 * (i % 2)
        yy, xx = np.mgrid[0:h, 0:w]
        if i % 2:
            data, nodata = np.stack([(xx + yy * b + i) % 251 for b in (1, 2, 3)]).astype("uint8"), None
        else:
            data, nodata = ((xx * 3 + yy * 5 + i) % 997).astype("float32")[None], -9999.0
        x0 = 500000 + 4000 * i
        path = workdir / f"in-{i:02d}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=data.shape[0], dtype=data.dtype,
                           crs="EPSG:32633", transform=from_bounds(x0, 5000000, x0 + 10 * w, 5000000 + 10 * h, w, h),
                           nodata=nodata) as dst:
            dst.write(data)
        fs.put_file(str(path), f"{CONTAINER}/in/{'sub/' if i % 4 == 3 else ''}r{i:02d}.tif")


# --- what a job produced -------------------------------------------------------------------------


def blob_hashes(fs, prefix: str) -> dict[str, str]:
    fs.invalidate_cache()
    base = prefix.rstrip("/") + "/"
    return {p[len(base):]: hashlib.sha256(fs.cat_file(p)).hexdigest() for p in fs.find(prefix)}


_RUN_SPECIFIC = {"created", "updated", "geoproc:job_id", "processing:lineage"}


def _strip(obj):
    """A STAC document without the keys that name the run that wrote it (times, job id)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _RUN_SPECIFIC}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def catalog_items(root: Path) -> dict[str, str]:
    """Relative path -> digest of each STAC item of a static catalog (run-specific keys removed)."""
    out = {}
    for p in sorted(root.rglob("*.json")):
        doc = json.loads(p.read_text())
        if doc.get("type") == "Feature":
            out[str(p.relative_to(root))] = hashlib.sha256(json.dumps(_strip(doc), sort_keys=True).encode()).hexdigest()
    return out


def task_results(led, job_id: str) -> dict[str, str]:
    return {f"{t['stage_name']}:{t['key']}": json.dumps(t["result"], sort_keys=True)
            for t in led.list_tasks(job_id, status="completed", limit=None)}


def outputs_of(kind: str, params: dict, fs, led, job_id: str):
    if kind == "cog":
        return blob_hashes(fs, params["output"].split("://", 1)[1])
    if kind == "stac_catalog":
        return catalog_items(Path(params["stac_catalog"]))
    return task_results(led, job_id)


def committed(led, jt, job_id: str) -> dict[str, tuple]:
    """finished_at and attempts of the COMPLETED tasks of the planned (non-volatile) stages."""
    volatile = {i for i, st in enumerate(jt.stages) if st.volatile}
    return {t["task_id"]: (t["finished_at"], t["attempts"])
            for t in led.list_tasks(job_id, status="completed", limit=None) if t["stage"] not in volatile}


# --- faults ----------------------------------------------------------------------------------------


class Injector(threading.Thread):
    """Waits until the run has recorded work past its first stage, then a random moment more, and
    kills a worker or takes the storage down, once."""

    def __init__(self, kind: str, delay: float, outage_s: float, client, azurite: Azurite, led, job_id: str,
                 rng: random.Random):
        super().__init__(daemon=True)
        self.kind, self.delay, self.outage_s = kind, delay, outage_s
        self.client, self.azurite, self.led, self.job_id, self.rng = client, azurite, led, job_id, rng
        self.injected = False
        self.finished = threading.Event()

    def run(self) -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not self.finished.is_set():  # wait for work to flow
            job = self.led.get_job(self.job_id)
            if job is not None and job.status == "running" and any(
                    c.get("completed") for st, c in self.led.counts(self.job_id).items() if st > 0):
                break
            time.sleep(0.02)
        if self.finished.wait(self.delay):
            return  # the job ended first: no fault this time
        if self.kind == "worker_kill":
            pids = sorted(self.client.run(os.getpid).items())
            _, pid = self.rng.choice(pids)
            os.kill(pid, signal.SIGKILL)
            self.injected = True
        elif self.kind == "storage_outage":
            self.azurite.stop()
            self.injected = True
            time.sleep(self.outage_s)
            self.azurite.start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--files", type=int, default=12, help="rasters in the container")
    ap.add_argument("--max-runs", type=int, default=6, help="runs of one job before giving up on it")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import geoproc
    from geoproc import get_job
    from geoproc.ledger import open_ledger
    from geoproc.storage import open_fs

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="geoproc-soak-"))
    azurite = Azurite(work / "azurite")
    azurite.start()
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    ledger_url, ref_url = f"sqlite:///{work}/ledger.db", f"sqlite:///{work}/reference.db"
    led, ref_led = open_ledger(ledger_url), open_ledger(ref_url)
    t_start = time.time()
    stats: Counter = Counter()
    faults: Counter = Counter()
    missed: Counter = Counter()
    problems: list[str] = []
    try:
        fs, _ = open_fs(f"az://{CONTAINER}", {"az": {"connection_string": azurite.connection_string}})
        write_inputs(fs, args.files, work)

        def job_params(kind: str, r: int, ref: bool) -> dict:
            tag = f"ref{r}" if ref else f"r{r}"
            if kind == "hello_world":
                return {"n": 600 + 10 * r, "delay": 0.01, "message": f"soak {r}"}
            if kind == "cog":
                return {"input": f"az://{CONTAINER}/in", "output": f"az://{CONTAINER}/out-{tag}"}
            return {"input": f"az://{CONTAINER}/in", "stac_catalog": str(work / f"catalog-{tag}"),
                    "stac_collection": f"soak-{r}"}

        kinds = ("hello_world", "cog", "stac_catalog")
        # clean reference runs, before any fault (its own ledger, its own output prefixes)
        reference: dict[tuple[str, int], dict] = {}
        for r in range(args.rounds):
            for kind in kinds:
                p = job_params(kind, r, ref=True)
                res = geoproc.run(kind, cluster=client, ledger=ref_url, **p)
                if res.status != "completed":
                    raise SystemExit(f"reference run of {kind} round {r} ended {res.status}")
                reference[(kind, r)] = outputs_of(kind, p, fs, ref_led, res.job_id)
        t_faults = time.time()

        for r in range(args.rounds):
            for kind in kinds:
                jt = get_job(kind)
                p = job_params(kind, r, ref=False)
                job_id = jt.job_id(jt.validate(p))
                choices = ["none", "worker_kill"] + (["storage_outage"] if kind != "hello_world" else [])
                fault = rng.choice(choices)
                seen: dict[str, tuple] = {}
                stats["jobs"] += 1
                status = None
                for attempt in range(args.max_runs):
                    inj = None
                    if fault != "none" and attempt == 0:
                        inj = Injector(fault, rng.uniform(0.0, 0.5), rng.uniform(3.0, 5.0), client, azurite, led,
                                       job_id, rng)
                        inj.start()
                    for tid, stamp in committed(led, jt, job_id).items():
                        seen.setdefault(tid, stamp)
                    if status == "completed_with_errors":
                        res = geoproc.retry(job_id, cluster=client, ledger=ledger_url)
                    else:
                        res = geoproc.run(kind, cluster=client, ledger=ledger_url, **p)
                    if inj is not None:
                        inj.finished.set()
                        inj.join(30)
                        (faults if inj.injected else missed)[fault] += 1
                    stats["runs"] += 1
                    stats["tasks run"] += res.executed
                    status = res.status
                    if status == "completed":
                        break
                    stats["runs ending " + status] += 1
                if status != "completed":
                    problems.append(f"round {r} {kind}: still {status} after {args.max_runs} runs")
                after = {t["task_id"]: t for t in led.list_tasks(job_id, limit=None)}
                recomputed = [tid for tid, stamp in seen.items()
                              if tid not in after or (after[tid]["finished_at"], after[tid]["attempts"]) != stamp]
                stats["tasks recomputed"] += len(recomputed)
                got, want = outputs_of(kind, p, fs, led, job_id), reference[(kind, r)]
                lost = sorted(set(want) - set(got))
                bad = sorted(k for k in want if k in got and got[k] != want[k])
                extra = sorted(set(got) - set(want))
                stats["outputs checked"] += len(want)
                stats["outputs lost"] += len(lost)
                stats["mismatches"] += len(bad) + len(extra)
                for what, names in (("lost", lost), ("mismatched", bad), ("unexpected", extra)):
                    if names:
                        problems.append(f"round {r} {kind}: {what} {names[:5]}")
                print(f"round {r} {kind:<12} fault={fault:<14} runs={attempt + 1} status={status} "
                      f"executed={res.executed}", flush=True)
    finally:
        client.close()
        cluster.close()
        azurite.stop()
        led.close()
        ref_led.close()

    print()
    print(f"soak: {args.rounds} rounds, seed {args.seed}, {args.files} rasters, 2 workers "
          f"(reference runs {t_faults - t_start:.0f} s, faulted runs {time.time() - t_faults:.0f} s)")
    rows = [("jobs run", stats["jobs"]), ("runs (incl. re-runs)", stats["runs"]), ("tasks run", stats["tasks run"]),
            ("faults injected", sum(faults.values()))]
    rows += [(f"  {k}", v) for k, v in sorted(faults.items())]
    rows += [(f"  {k} (job ended first)", v) for k, v in sorted(missed.items())]
    rows += [(k, v) for k, v in sorted(stats.items()) if k.startswith("runs ending")]
    rows += [("tasks recomputed", stats["tasks recomputed"]), ("outputs checked", stats["outputs checked"]),
             ("outputs lost (target 0)", stats["outputs lost"]), ("mismatches (target 0)", stats["mismatches"])]
    for name, value in rows:
        print(f"{name:<32}{value:>8}")
    for p in problems:
        print("problem:", p)
    raise SystemExit(1 if problems or stats["outputs lost"] or stats["mismatches"] or stats["tasks recomputed"] else 0)


if __name__ == "__main__":
    main()
