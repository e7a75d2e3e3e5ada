"""large_raster as a job on real Dask worker processes: outputs, resume, and bounded memory."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rasterio
from kit.rasters import NODATA, reference_warp

import geoproc
from geoproc.errors import TaskWarning
from geoproc.jobs.large_raster_tasks import AssemblyResult, TileResult
from geoproc.raster.stats import band_stats


def test_job_writes_a_valid_single_cog_on_the_cluster(dask_cluster, smooth_raster, tmp_path):
    path = smooth_raster("utm33")
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    kw = dict(input=str(path), output=str(tmp_path / "out"), target_crs="EPSG:3857", tile_size=512,
              reproject_resampling="bilinear", bands=[2, 3])
    res = geoproc.run("large_raster", cluster=dask_cluster, ledger=ledger, **kw)
    assert res.status == "completed", res.error
    out = res.result
    assert out["tiling"]["tiles"] == out["plan"]["tiles"] > 1
    with rasterio.open(out["output"]) as ds:
        assert ds.count == 2 and ds.overviews(1)
        ref = reference_warp(path, {"width": ds.width, "height": ds.height, "transform": list(ds.transform)[:6],
                                    "crs": "EPSG:3857"}, bands=[2, 3])
        data = ds.read()
    both = (data != NODATA) & (ref != NODATA)
    assert np.abs(data - ref)[both].max() < 1.0
    # the statistics merged from the tiles are those of the file
    with rasterio.open(out["output"]) as ds:
        measured = band_stats(ds)
    for got, want in zip(out["band_stats"], measured, strict=True):
        assert got == pytest.approx(want, rel=1e-9)
    # submitting the same job again computes nothing
    again = geoproc.run("large_raster", cluster=dask_cluster, ledger=ledger, **kw)
    assert again.cached and again.job_id == res.job_id


def test_resume_reruns_only_missing_tiles(dask_cluster, smooth_raster, tmp_path):
    from geoproc.ledger import open_ledger

    path = smooth_raster("geographic")
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    kw = dict(input=str(path), output=str(tmp_path / "tiles"), mode="tiles", target_crs="EPSG:3857", tile_size=512)
    first = geoproc.run("large_raster", cluster=dask_cluster, ledger=ledger, **kw)
    assert first.status == "completed", first.error
    led = open_ledger(ledger)
    tiles = led.list_tasks(first.job_id, stage=1, limit=None)
    assert len(tiles) == first.result["tiling"]["tiles"] >= 4
    assert all(t["key"].startswith("r") and "c" in t["key"] for t in tiles)
    # the stored results are the JSON of the typed results (tile COGs: their check's facts and warnings)
    for t in tiles:
        typed = TileResult.model_validate(t["result"])
        assert typed.model_dump(mode="json") == t["result"] and typed.url and typed.overviews is not None
        assert all(isinstance(w, TaskWarning) for w in typed.warnings)
    (assembly,) = led.list_tasks(first.job_id, stage=2, limit=None)
    mosaic = AssemblyResult.model_validate(assembly["result"])
    assert mosaic.model_dump(mode="json") == assembly["result"] and mosaic.mode == "tiles"
    assert mosaic.tiles == len(mosaic.items) == len(tiles) and "output" not in assembly["result"]
    # lose one tile (as after a driver kill mid-stage), then run again: only that tile is computed
    victim = tiles[0]
    led.reset_tasks(first.job_id, task_ids=[victim["task_id"]])
    led.update_job(first.job_id, status="interrupted")
    again = geoproc.run("large_raster", cluster=dask_cluster, ledger=ledger, **kw)
    assert again.status == "completed", again.error
    assert again.executed == 1
    assert again.result["mosaic"] == first.result["mosaic"]


@pytest.mark.slow
def test_raster_four_times_the_worker_memory_completes_under_the_limit(tmp_path):
    """Scaled down: a 256 MiB raster, each worker allowed 64 MiB of data above its idle footprint.

    The limit is measured, not enforced by Dask: a worker's RSS is sampled every 10 ms during the whole
    job (tile tasks and the finalize task that assembles the COG with its overviews), and its peak
    above the worker's idle RSS (interpreter, GDAL, rasterio and geoproc loaded) must stay under
    ``memory_budget``. Dask's own ``memory_limit`` counts the idle footprint too (about 130 MiB
    here) and pauses a worker at 80 % of it, so an honest 64 MiB limit cannot be given to Dask
    without the worker pausing before any task starts; it is left generous and the budget is
    asserted on the measured peak instead.
    """
    from dask.distributed import Client, LocalCluster
    from kit.rasters import smooth
    from rasterio.transform import from_bounds

    bands, size = 1, 8192  # 8192 x 8192 float32 = 256 MiB, written in strips
    path = tmp_path / "big.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=bands, dtype="float32",
                       crs="EPSG:32633", transform=from_bounds(500000, 5000000, 581920, 5081920, size, size),
                       nodata=NODATA, tiled=True, blockxsize=512, blockysize=512) as dst:
        for r in range(0, size, 512):
            dst.write(smooth(bands, 512, size) + r / 1000.0, window=((r, r + 512), (0, size)))
    raster_bytes = size * size * bands * 4
    data_limit = raster_bytes // 4

    def rss() -> int:
        import psutil

        return psutil.Process().memory_info().rss

    def warm() -> int:
        import gc

        import rasterio.warp  # noqa: F401
        import rio_cogeo.cogeo  # noqa: F401

        import geoproc.engine.worker  # noqa: F401 - what runs every batch
        import geoproc.jobs.large_raster_tasks  # noqa: F401 - the handlers' imports, as a task would load them

        gc.collect()
        return rss()

    def start_sampler(dask_worker=None) -> None:
        import psutil

        proc = psutil.Process()
        state = {"peak": proc.memory_info().rss, "stop": False, "tasks": {}}

        def loop() -> None:
            while not state["stop"]:
                now = proc.memory_info().rss
                state["peak"] = max(state["peak"], now)
                for ts in list(dask_worker.state.executing):  # which task was running at the peak
                    key = str(ts.key)
                    state["tasks"][key] = max(state["tasks"].get(key, 0), now)
                time.sleep(0.01)

        threading.Thread(target=loop, daemon=True).start()
        dask_worker._geoproc_rss = state

    def peak(dask_worker=None) -> tuple[int, dict[str, int]]:
        dask_worker._geoproc_rss["stop"] = True
        return dask_worker._geoproc_rss["peak"], dask_worker._geoproc_rss["tasks"]

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="2GiB") as cluster, Client(cluster) as client:
        idle = client.run(warm)
        client.run(lambda dask_worker: start_sampler(dask_worker))
        res = geoproc.run("large_raster", cluster=client, ledger=f"sqlite:///{tmp_path}/l.db",
                          input=str(path), output=str(tmp_path / "out"), target_crs="EPSG:3857",
                          memory_budget=data_limit, reproject_resampling="bilinear", gdal_threads=1)
        peaks = client.run(lambda dask_worker: peak(dask_worker))
    assert res.status == "completed", res.error
    assert res.result["tiling"]["tiles"] >= 4
    assert res.result["plan"]["memory_per_task"] <= data_limit  # the plan's own estimate fits the budget
    with rasterio.open(res.result["output"]) as ds:
        assert ds.overviews(1) and ds.read(1, out_shape=(64, 64)).max() > 0
    over = []
    for addr, (p, tasks) in peaks.items():
        used = p - idle[addr]
        top = sorted(tasks.items(), key=lambda kv: -kv[1])[:3]
        print(f"worker {addr}: idle {idle[addr] / 2**20:.0f} MiB, peak {p / 2**20:.0f} MiB, "
              f"data {used / 2**20:.0f} MiB of {data_limit / 2**20:.0f} MiB (raster {raster_bytes / 2**20:.0f} MiB); "
              f"highest during: {[(k[-40:], round((v - idle[addr]) / 2**20)) for k, v in top]}")
        if used >= data_limit:
            over.append(addr)
    assert not over, f"worker(s) {over} went over the {data_limit >> 20} MiB memory limit"
