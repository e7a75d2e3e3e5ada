"""A write survives its driver: SIGKILL mid-write, run again, only unwritten regions run; and Azure.

The driver is a real Python process running ``geoproc.write`` (a script, as a notebook kernel would);
the regions run on the shared cluster of worker processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import xarray as xr
from kit.polling import wait_for
from kit.rasters import write_scene
from kit.resume import region_counts

import geoproc
from geoproc.ledger import open_ledger

SCRIPT = '''
import sys
import geoproc

def ndvi(src):
    a = geoproc.open(src, chunks=128)
    red, nir = a.sel(band="red").astype("float32"), a.sel(band="nir").astype("float32")
    return ((nir - red) / (nir + red)).where(a.sel(band="red") != 0).rio.write_nodata(float("nan"))

if __name__ == "__main__":
    src, store, ledger, cluster, fmt = sys.argv[1:6]
    res = geoproc.write(ndvi(src), store, format=fmt, chunks=(128, 128), region_bytes="64KiB", ledger=ledger,
                        cluster=cluster)
    print(res.job_id, res.status, res.executed)
'''


def _scene(path, size):
    write_scene(path, size=(size, size), nodata_corner=(100, 100), block=128)
    return path


def _regions(ledger_url, job_id):
    led = open_ledger(ledger_url, read_only=True)
    try:
        return led.counts(job_id).get(1, {})
    finally:
        led.close()


def _job_id(ledger_url):
    state = region_counts(ledger_url)  # None until the driver has written its ledger's schema and job
    return state[0] if state else None


def _output(path, fmt):
    """What a clean and a resumed run must agree on: the array (Zarr), the very bytes (COG)."""
    return xr.open_zarr(path)["data"].values if fmt == "zarr" else path.read_bytes()


@pytest.mark.parametrize("fmt", ["zarr", "cog"])
def test_a_killed_write_resumes_with_only_the_unwritten_regions(fmt, tmp_path, dask_cluster):
    src = str(_scene(tmp_path / "scene.tif", 2048 if fmt == "zarr" else 4096))  # 256 regions of 128; 64 of 512
    script = tmp_path / "write_ndvi.py"
    script.write_text(SCRIPT)
    sys.path.insert(0, str(tmp_path))
    try:
        import write_ndvi
    finally:
        sys.path.remove(str(tmp_path))
    out = tmp_path / ("ndvi.zarr" if fmt == "zarr" else "ndvi.tif")

    clean = geoproc.write(write_ndvi.ndvi(src), str(out), format=fmt, chunks=(128, 128), region_bytes="64KiB",
                          ledger=f"sqlite:///{tmp_path}/clean.db", cluster=dask_cluster)
    assert clean.status == "completed", clean.error
    want = _output(out, fmt)
    shutil.rmtree(out) if fmt == "zarr" else out.unlink()

    killed_ledger = f"sqlite:///{tmp_path}/killed.db"
    proc = subprocess.Popen([sys.executable, str(script), src, str(out), killed_ledger, dask_cluster, fmt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        job_id = wait_for(lambda: _job_id(killed_ledger), what="the job")
        wait_for(lambda: _regions(killed_ledger, job_id).get("completed", 0) >= 20 or proc.poll() is not None,
                 timeout=120, what="20 regions written")
        assert proc.poll() is None, (proc.communicate(), _regions(killed_ledger, job_id))  # still writing when killed
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    counts = _regions(killed_ledger, job_id)
    total = sum(counts.values())
    done = counts.get("completed", 0)
    assert job_id == clean.job_id and 20 <= done < total == (256 if fmt == "zarr" else 64), counts

    again = geoproc.write(write_ndvi.ndvi(src), str(out), format=fmt, chunks=(128, 128), region_bytes="64KiB",
                          ledger=killed_ledger, cluster=dask_cluster)
    assert again.job_id == job_id and again.status == "completed"
    assert again.executed == (total - done) + 1  # the regions not recorded as written, and the finalize
    got = _output(out, fmt)
    if fmt == "zarr":
        np.testing.assert_array_equal(got, want)  # NaN in the same places, the same values elsewhere
    else:
        assert got == want  # byte-identical COG
    assert again.result["band_stats"] == clean.result["band_stats"]


def test_write_reads_and_writes_azure(tmp_path, azurite, az_container, dask_cluster, sqlite_url):
    from geoproc.storage import open_fs

    fs, _ = open_fs(f"az://{az_container}", {"az": {"connection_string": azurite}})
    local = _scene(tmp_path / "scene.tif", 512)
    fs.put_file(str(local), f"{az_container}/in/scene.tif")
    a = geoproc.open(f"az://{az_container}/in/scene.tif", chunks=128)
    assert list(a.band.values) == ["blue", "green", "red", "nir"]
    out = f"az://{az_container}/out/scene.zarr"
    res = geoproc.write(a.sel(band=["red", "nir"]), out, cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    back = xr.open_zarr(out, storage_options={"connection_string": azurite}, decode_coords="all")
    with rasterio.open(local) as src:  # the regions were read from the blob by the workers
        np.testing.assert_array_equal(back["data"].values, src.read([3, 4]))
    assert back.rio.crs.to_epsg() == 32633
    again = geoproc.write(geoproc.open(f"az://{az_container}/in/scene.tif", chunks=128).sel(band=["red", "nir"]),
                          out, cluster=dask_cluster, ledger=sqlite_url)
    assert again.cached and again.job_id == res.job_id
    # a COG: its regions' parts wait in the container; the assembly fetches and stitches them
    cog = geoproc.write(a.sel(band=["red", "nir"]), f"az://{az_container}/out/scene.tif", format="cog",
                        cluster=dask_cluster, ledger=sqlite_url)
    assert cog.status == "completed", cog.error
    fs.get_file(f"{az_container}/out/scene.tif", str(tmp_path / "back.tif"))
    with rasterio.open(tmp_path / "back.tif") as ds, rasterio.open(local) as src:
        np.testing.assert_array_equal(ds.read(), src.read([3, 4]))
        assert ds.descriptions == ("red", "nir") and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert not fs.exists(f"{az_container}/out/.scene.parts")


@pytest.fixture(autouse=True)
def _forget_script_module():
    yield
    sys.modules.pop("write_ndvi", None)
