"""The process job with a user's function: regions with a halo, on worker processes, and its failures."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from kit import userfuncs
from kit.drivers import geoproc_cmd
from kit.rasters import write_scene
from kit.resume import kill_midway

import geoproc

FUNCS = Path(userfuncs.__file__)


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.tif"
    return path, write_scene(path, size=(700, 600), nodata_corner=(50, 60))


@pytest.fixture
def pids():
    """The file the user functions append their process ids to, emptied."""
    path = Path(userfuncs.PIDS)
    path.unlink(missing_ok=True)
    return path


def _cli(*args, env=None):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _whole(data: np.ndarray) -> np.ndarray:
    """The focal mean run once over the whole raster, in this process."""
    b1 = np.where(data[0] == 0, np.nan, data[0].astype("float32"))
    ds = xr.Dataset({"b1": (("y", "x"), b1)})
    spec = importlib.util.spec_from_file_location("focal_reference", FUNCS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.focal_mean(ds).values


def test_focal_mean_with_halo_equals_the_function_on_the_whole_raster(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    want = _whole(data)
    outs = {}
    for halo in (1, 0):
        out = tmp_path / f"focal{halo}.tif"
        p = _cli("run", "process", "--set", f"input={path}", "--set", f"function={FUNCS}:focal_mean",
                 "--set", f"halo={halo}", "--set", f"output={out}", "--set", "region_bytes=256KiB",
                 "--cluster", dask_cluster, "--ledger", sqlite_url, "--json")
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout)
        assert res["executed"] > 4  # several regions
        with rasterio.open(out) as ds:
            outs[halo] = ds.read(1)
            assert ds.dtypes[0] == "float32" and ds.crs.to_epsg() == 32633
    # with the halo: the same bits everywhere, the raster's edges and nodata corner included
    np.testing.assert_array_equal(outs[1], want)
    # without it, regions see a cut neighbourhood along their edges: the halo is what makes it exact
    differs = np.argwhere(~((outs[0] == want) | (np.isnan(outs[0]) & np.isnan(want))))
    at_region_edge = np.isin(differs[:, 0] % 512, (0, 511)) | np.isin(differs[:, 1] % 512, (0, 511))
    assert len(differs) and at_region_edge.all()


def test_function_from_a_module_runs_on_the_workers_and_reruns_nothing(scene, tmp_path, pids, dask_cluster,
                                                                       sqlite_url):
    path, data = scene
    kwargs = dict(input=str(path), format="zarr", cluster=dask_cluster, ledger=sqlite_url, region_bytes="256KiB")
    res = geoproc.process(userfuncs.ratio_and_mask, str(tmp_path / "r.zarr"), **kwargs)
    assert res.status == "completed", res.error
    back = xr.open_zarr(tmp_path / "r.zarr")["data"]
    assert back.shape == (2, 600, 700) and list(back.band.values) == ["ratio", "greener"]
    valid = data[2] != 0
    red, nir = data[2].astype("float32"), data[3].astype("float32")
    np.testing.assert_array_equal(back.values[0][valid], (nir / red)[valid])
    np.testing.assert_array_equal(back.values[1][valid], (nir > red)[valid].astype("float32"))
    ran = {int(x) for x in pids.read_text().split()}
    assert ran - {os.getpid()}, "the function ran on the workers too"
    again = geoproc.process("kit.userfuncs:ratio_and_mask", str(tmp_path / "r.zarr"), **kwargs)
    assert again.job_id == res.job_id and again.executed == 0


@pytest.mark.parametrize(("function", "code"), [
    ("nosuchmodule_xyz:f", "FUNCTION_IMPORT"),
    (f"{FUNCS}:nope", "FUNCTION_IMPORT"),
    ("/no/such/file.py:f", "FUNCTION_IMPORT"),
    ("not a spec", "FUNCTION_IMPORT"),
    (f"{FUNCS}:always_raises", "FUNCTION_FAILED"),
    (f"{FUNCS}:wrong_shape", "FUNCTION_RESULT"),
    (f"{FUNCS}:not_an_array", "FUNCTION_RESULT"),
])
def test_a_bad_function_is_refused_before_anything_runs(scene, tmp_path, sqlite_url, function, code):
    path, _ = scene
    out = tmp_path / "x.tif"
    p = _cli("run", "process", "--set", f"input={path}", "--set", f"function={function}", "--set", f"output={out}",
             "--ledger", sqlite_url, "--workers", "1")
    assert p.returncode == 2 and code in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not out.exists()


def test_a_function_failing_on_some_regions_fails_them_and_leaves_no_output(scene, tmp_path, dask_cluster,
                                                                           sqlite_url):
    path, _ = scene
    out = tmp_path / "x.tif"
    for function, code in ((f"{FUNCS}:raises_where_high", "FUNCTION_FAILED"), (f"{FUNCS}:floats", "FUNCTION_RESULT")):
        extra = ("--set", "dtype=uint16") if code == "FUNCTION_RESULT" else ()
        p = _cli("run", "process", "--set", f"input={path}", "--set", f"function={function}", *extra,
                 "--set", f"output={out}", "--set", "region_bytes=256KiB", "--cluster", dask_cluster,
                 "--ledger", sqlite_url)
        assert p.returncode != 0 and code in p.stdout + p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not out.exists()


REPO = Path(__file__).resolve().parents[2]


def test_the_spec_files_run_from_the_repository(tmp_path, dask_cluster, sqlite_url):
    from geoproc.raster.samples import write_samples

    write_samples(tmp_path / "samples")
    scene = tmp_path / "scene.tif"
    data = write_scene(scene, size=(300, 200), nodata_corner=(10, 10))
    common = ("--cluster", dask_cluster, "--ledger", sqlite_url, "--json")
    focal = tmp_path / "focal.tif"
    p = subprocess.run(geoproc_cmd("run", "jobs/focal_mean.toml", "--set", f"input={tmp_path / 'samples/dem_utm33.tif'}",
                                   "--set", f"output={focal}", "--set", "region_bytes=256KiB", *common),
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["result"]["function"] == f"{REPO}/jobs/functions/filters.py:focal_mean"
    spec = importlib.util.spec_from_file_location("filters_reference", REPO / "jobs/functions/filters.py")
    filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters)
    with rasterio.open(tmp_path / "samples/dem_utm33.tif") as src:
        dem = src.read(1, masked=True).filled(np.nan)
    with rasterio.open(focal) as ds:
        np.testing.assert_array_equal(ds.read(1), filters.focal_mean(xr.Dataset({"b1": (("y", "x"), dem)})).values)
    ndvi = tmp_path / "ndvi.tif"
    p = subprocess.run(geoproc_cmd("run", "jobs/ndvi.toml", "--set", f"input={scene}", "--set", f"output={ndvi}",
                                   *common), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    red, nir = data[2].astype("float32"), data[3].astype("float32")
    with rasterio.open(ndvi) as ds:
        got = ds.read(1)
    valid = data[2] != 0
    np.testing.assert_array_equal(got[valid], ((nir - red) / (nir + red))[valid])


def test_a_killed_process_job_resumes_with_only_the_missing_regions(tmp_path, dask_cluster):
    src = tmp_path / "scene.tif"
    write_scene(src, size=(4096, 4096), nodata_corner=(100, 100), block=128)  # 64 regions of one 512 block
    out = tmp_path / "focal.tif"

    def args(ledger):
        return ("run", "process", "--set", f"input={src}", "--set", f"function={FUNCS}:focal_mean", "--set", "halo=1",
                "--set", f"output={out}", "--set", "chunks=[128, 128]", "--set", "region_bytes=64KiB",
                "--cluster", dask_cluster, "--ledger", ledger, "--json")

    clean = _cli(*args(f"sqlite:///{tmp_path}/clean.db"))
    assert clean.returncode == 0, clean.stderr
    want = out.read_bytes()
    out.unlink()
    killed = f"sqlite:///{tmp_path}/killed.db"
    job_id, done, total = kill_midway(args(killed), killed)
    assert job_id == json.loads(clean.stdout)["job_id"] and 20 <= done < total == 64
    again = _cli(*args(killed))
    assert again.returncode == 0, again.stderr
    res = json.loads(again.stdout)
    assert res["job_id"] == job_id and res["executed"] == (total - done) + 1  # the missing regions and finalize
    assert out.read_bytes() == want  # byte-identical to the clean run
    assert json.loads(_cli(*args(killed)).stdout)["executed"] == 0
