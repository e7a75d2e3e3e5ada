"""large_raster under faults: a worker SIGKILLed mid-stage, and a driver SIGKILLed mid-stage then re-run.

The source is a 3072 x 3072 float32 UTM raster reprojected to EPSG:3857 in 512-pixel tiles (about 40
tiles), so that both kills land while tiles are still being computed. Each faulted run is compared
pixel for pixel with a clean run of the same job.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import rasterio
from distributed import Client, LocalCluster
from kit.drivers import assert_reaped
from kit.ledger import counts
from kit.polling import wait_for
from rasterio.transform import from_bounds

import geoproc
from geoproc import get_job
from geoproc.ledger import open_ledger

PLAN, TILES, FINALIZE = 0, 1, 2
SIZE = 3072
NODATA = -9999.0


@pytest.fixture
def utm_raster(tmp_path):
    path = tmp_path / "utm.tif"
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", nodata=NODATA,
                       crs="EPSG:32633", transform=from_bounds(500000, 5000000, 530720, 5030720, SIZE, SIZE),
                       tiled=True, blockxsize=512, blockysize=512) as dst:
        for r in range(0, SIZE, 512):
            yy, xx = np.mgrid[r:r + 512, 0:SIZE]
            dst.write((100 + 50 * np.sin(xx / 97.0) * np.cos(yy / 131.0)).astype("float32"), 1,
                      window=((r, r + 512), (0, SIZE)))
    return path


def params(src, out) -> dict:
    return {"input": str(src), "output": str(out), "target_crs": "EPSG:3857", "tile_size": 512,
            "reproject_resampling": "bilinear"}


def pixels(url: str) -> np.ndarray:
    with rasterio.open(url) as ds:
        assert ds.overviews(1)
        return ds.read()


def test_worker_killed_mid_tiles_completes_with_the_clean_output(utm_raster, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        clean = geoproc.run("large_raster", cluster=client, ledger=f"sqlite:///{tmp_path}/clean.db",
                            **params(utm_raster, tmp_path / "clean"))
        assert clean.status == "completed", clean.error
        killed: dict = {}

        def kill_a_busy_worker() -> None:
            led = open_ledger(url)
            deadline = time.time() + 60
            while time.time() < deadline:
                jobs = led.list_jobs(limit=1)
                if jobs and counts(led, jobs[0].job_id, TILES) >= 3:
                    busy = [a for a, keys in client.processing().items() if keys]
                    if busy:
                        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                        os.kill(pid, signal.SIGKILL)
                        killed.update(addr=busy[0], tiles_done=counts(led, jobs[0].job_id, TILES))
                        return
                time.sleep(0.02)

        t = threading.Thread(target=kill_a_busy_worker)
        t.start()
        res = geoproc.run("large_raster", cluster=client, ledger=url, **params(utm_raster, tmp_path / "out"))
        t.join()
    assert killed, "no worker was killed while tiles were being computed"
    assert killed["tiles_done"] < res.result["tiling"]["tiles"], "the kill came after the last tile"
    assert res.status == "completed", res.error
    led = open_ledger(url)
    assert led.counts(res.job_id)[TILES] == {"completed": res.result["tiling"]["tiles"]}
    assert np.array_equal(pixels(res.result["output"]), pixels(clean.result["output"]))
    assert not (tmp_path / "out" / ".utm.parts").exists()  # the parts are gone once the COG is published


def test_driver_killed_mid_tiles_reruns_only_the_missing_tiles(utm_raster, tmp_path, drivers, dask_cluster):
    clean = geoproc.run("large_raster", cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/clean.db",
                        **params(utm_raster, tmp_path / "clean"))
    assert clean.status == "completed", clean.error
    total = clean.result["tiling"]["tiles"]

    p = params(utm_raster, tmp_path / "out")
    jt = get_job("large_raster")
    jid = jt.job_id(jt.validate(p))
    url = f"sqlite:///{tmp_path}/ledger.db"
    led = open_ledger(url)
    args = ["run", "large_raster", *[a for k, v in p.items() for a in ("--set", f"{k}={v}")],
            "--workers", "2", "--ledger", url, "--json"]
    d = drivers(*args, env={"GEOPROC_FLUSH_INTERVAL": "0.05"})
    wait_for(lambda: led.get_job(jid) is not None and counts(led, jid, TILES) >= 4, timeout=90,
             what="four tiles recorded")
    assert d.proc.poll() is None, f"the driver ended before the kill: {d.stderr[-2000:]}"
    kids = d.sigkill()
    assert_reaped(kids)
    done_before = {t["task_id"]: (t["finished_at"], t["attempts"])
                   for t in led.list_tasks(jid, status="completed", stage=TILES, limit=None)}
    assert 4 <= len(done_before) < total, "the kill came after the last tile"
    assert FINALIZE not in led.counts(jid) or counts(led, jid, FINALIZE) == 0

    final = drivers(*args)
    assert final.wait(180) == 0, final.stderr[-3000:]
    res = json.loads(final.stdout)
    assert res["status"] == "completed"
    after = {t["task_id"]: t for t in led.list_tasks(jid, stage=TILES, limit=None)}
    assert len(after) == total and all(t["status"] == "completed" for t in after.values())
    rerun = [tid for tid, stamp in done_before.items() if (after[tid]["finished_at"], after[tid]["attempts"]) != stamp]
    assert not rerun, f"tiles completed before the kill ran again: {rerun}"
    assert res["executed"] == total - len(done_before) + 1  # the missing tiles and the finalize, nothing else
    assert np.array_equal(pixels(res["result"]["output"]), pixels(clean.result["output"]))
    assert not (tmp_path / "out" / ".utm.parts").exists()
