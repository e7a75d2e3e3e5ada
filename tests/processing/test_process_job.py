"""The process job: band math from the command line and from Python, on worker processes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import rasterio
from kit.drivers import geoproc_cmd
from kit.rasters import write_scene

import geoproc


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.tif"
    return path, write_scene(path, size=(700, 600), nodata_corner=(50, 60))


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


def test_ndvi_from_the_command_line_equals_numpy_and_reruns_nothing(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    out = tmp_path / "ndvi.tif"
    args = ("run", "process", "--set", f"input={path}", "--set", "expr=(b4 - b3) / (b4 + b3)", "--set",
            f"output={out}", "--set", "region_bytes=256KiB", "--cluster", dask_cluster, "--ledger", sqlite_url, "--json")
    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    red, nir = data[2].astype("float32"), data[3].astype("float32")
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where((data[2] != 0) & (data[3] != 0), (nir - red) / (nir + red), np.nan).astype("float32")
    with rasterio.open(out) as ds:
        got = ds.read(1)
        assert ds.crs.to_epsg() == 32633 and np.isnan(ds.nodata)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    again = json.loads(_cli(*args).stdout)
    assert again["job_id"] == res["job_id"] and again["executed"] == 0


def test_named_bands_and_several_outputs_from_python(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    res = geoproc.process("nir - red; where(nir > red, 1, 0)", str(tmp_path / "two.zarr"), input=str(path),
                          format="zarr", dtype="float32", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    import xarray as xr

    back = xr.open_zarr(tmp_path / "two.zarr")["data"]
    assert back.shape == (2, 600, 700)
    valid = data[2] != 0
    diff = data[3].astype("float32") - data[2].astype("float32")
    np.testing.assert_array_equal(back.values[0][valid], diff[valid])
    assert np.isnan(back.values[0][~valid]).all()


def test_a_bad_expression_is_refused_before_anything_runs(scene, tmp_path, sqlite_url):
    path, _ = scene
    for expr, code in (("__import__('os')", "EXPR_FORBIDDEN"), ("b1.values", "EXPR_FORBIDDEN")):
        p = _cli("run", "process", "--set", f"input={path}", "--set", f"expr={expr}", "--set",
                 f"output={tmp_path / 'x.tif'}", "--ledger", sqlite_url)
        assert p.returncode == 2 and code in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = _cli("run", "process", "--set", f"input={path}", "--set", "expr=b9 * 2", "--set",
             f"output={tmp_path / 'x.tif'}", "--ledger", sqlite_url, "--workers", "1")
    assert p.returncode == 2 and "unknown name 'b9'" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "x.tif").exists()


def test_inputs_on_different_grids_need_an_output_grid(raster_factory, tmp_path, dask_cluster, sqlite_url):
    red = raster_factory("red.tif", size=(256, 256), bounds=(500000, 5000000, 502560, 5002560))
    nir = raster_factory("nir.tif", size=(128, 128), bounds=(500000, 5000000, 502560, 5002560))  # 20 m, not 10 m
    out = tmp_path / "ratio.tif"
    base = ("run", "process", "--set", f'inputs={{"red": "{red}", "nir": "{nir}"}}', "--set", "expr=nir / red",
            "--set", f"output={out}", "--cluster", dask_cluster, "--ledger", sqlite_url)
    p = _cli(*base)
    assert p.returncode == 2 and "GRIDS_DIFFER" in p.stderr and "'nir' and 'red'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not out.exists()
    p = _cli(*base, "--set", "crs=EPSG:32633", "--set", "resolution=10")
    assert p.returncode == 0, p.stderr
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height) == (256, 256) and ds.res == (10.0, 10.0)
        ratio = ds.read(1)
    with rasterio.open(red) as r, rasterio.open(nir) as n:
        with np.errstate(divide="ignore", invalid="ignore"):  # nearest: each 20 m pixel twice
            want = (n.read(1).repeat(2, axis=0).repeat(2, axis=1) / r.read(1)).astype("float32")
    want[~np.isfinite(want)] = np.nan  # division by zero gives the nodata
    np.testing.assert_allclose(ratio, want, rtol=1e-6)


def test_plan_draws_the_regions_a_run_then_runs(scene, tmp_path, dask_cluster, sqlite_url):
    path, _ = scene
    sets = ("--set", f"input={path}", "--set", "expr=(b4 - b3) / (b4 + b3)", "--set", f"output={tmp_path / 'n.tif'}",
            "--set", "region_bytes=256KiB")
    p = _cli("plan", "process", *sets, "--geojson", str(tmp_path / "regions.json"), "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["regions"] == 4 and plan["shape"] == [1, 600, 700] and plan["crs"] == "EPSG:32633"
    feats = json.loads((tmp_path / "regions.json").read_text())["features"]
    assert sorted(f["id"] for f in feats) == ["r0c0", "r0c1", "r1c0", "r1c1"]
    assert not (tmp_path / "n.tif").exists()  # nothing ran
    res = json.loads(_cli("run", "process", *sets, "--cluster", dask_cluster, "--ledger", sqlite_url, "--json").stdout)
    assert res["job_id"] == plan["job_id"] and res["executed"] == plan["regions"] + 2  # template, finalize


@pytest.mark.parametrize("fmt", ["cog", "zarr"])
def test_a_deleted_output_is_made_again_on_resubmission(fmt, scene, tmp_path, dask_cluster, sqlite_url):
    import shutil

    import xarray as xr

    path, _ = scene
    out = tmp_path / ("ndvi.tif" if fmt == "cog" else "ndvi.zarr")
    params = dict(input=str(path), expr="(b4 - b3) / (b4 + b3)", output=str(out), format=fmt,
                  region_bytes="256KiB", cluster=dask_cluster, ledger=sqlite_url)

    def content():
        return out.read_bytes() if fmt == "cog" else xr.open_zarr(out)["data"].values

    first = geoproc.run("process", **params)
    assert first.status == "completed", first.error
    want = content()
    shutil.rmtree(out) if fmt == "zarr" else out.unlink()
    again = geoproc.run("process", **params)
    assert again.status == "completed" and not again.cached and again.executed > 0
    np.testing.assert_array_equal(content(), want) if fmt == "zarr" else (content() == want or pytest.fail("bytes"))
    third = geoproc.run("process", **params)
    assert third.cached and third.executed == 0
