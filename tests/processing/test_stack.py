"""The stack job: single-band rasters into one multi-band COG, on worker processes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import rasterio
from kit.drivers import geoproc_cmd

import geoproc

GRID = dict(crs="EPSG:32633", bounds=(500000, 5000000, 507000, 5006000), size=(700, 600))


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


@pytest.fixture
def periods(raster_factory, tmp_path):
    """Eight flood depths (one per return period) on one grid, uint16, nodata 0 in a corner."""
    files, data = [], []
    yy, xx = np.mgrid[0:600, 0:700]
    for i, rp in enumerate((2, 5, 10, 20, 50, 100, 200, 500)):
        d = ((xx + 2 * yy) * (i + 1) % 3000 + 1).astype("uint16")
        d[:40, :50] = 0
        files.append(raster_factory(f"depth_rp{rp:03d}.tif", directory=tmp_path / "periods", dtype="uint16",
                                    nodata=0, data=d[None], **GRID))
        data.append(d)
    return files, np.stack(data)


def test_band_i_is_file_i_with_names_and_stac(periods, tmp_path, dask_cluster, sqlite_url):
    files, data = periods
    out = tmp_path / "flood.tif"
    args = ("run", "stack", "--set", f"inputs={json.dumps([str(f) for f in files])}", "--set", f"output={out}",
            "--set", "region_bytes=256KiB", "--cluster", dask_cluster, "--ledger", sqlite_url, "--json")
    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    names = [f.stem for f in files]
    with rasterio.open(out) as ds:
        assert ds.count == 8 and ds.dtypes == ("uint16",) * 8 and ds.nodata == 0
        assert list(ds.descriptions) == names
        np.testing.assert_array_equal(ds.read(), data)
        assert ds.overviews(1)
    assert res["result"]["band_names"] == names
    item = json.loads((tmp_path / "flood.json").read_text())
    asset = item["assets"]["data"]
    assert [b["name"] for b in asset["eo:bands"]] == names
    valid = data[0] != 0
    assert asset["raster:bands"][2]["statistics"]["maximum"] == int(data[2][valid].max())
    again = json.loads(_cli(*args).stdout)
    assert again["job_id"] == res["job_id"] and again["executed"] == 0


def test_a_prefix_sorted_by_name_into_zarr_with_band_names(periods, tmp_path, dask_cluster, sqlite_url):
    files, data = periods
    names = [f"rp{i}" for i in range(8)]
    res = geoproc.run("stack", input=str(tmp_path / "periods"), band_names=names, format="zarr",
                      output=str(tmp_path / "flood.zarr"), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    import xarray as xr

    back = xr.open_zarr(tmp_path / "flood.zarr", decode_coords="all")["data"]
    assert list(back.band.values) == names and back.rio.crs.to_epsg() == 32633
    np.testing.assert_array_equal(back.values, data)  # the files' names sort them in the order written


def test_a_file_on_another_grid_is_refused_by_name_or_aligned(periods, raster_factory, tmp_path, dask_cluster,
                                                             sqlite_url):
    files, data = periods
    coarse = raster_factory("coarse.tif", dtype="uint16", nodata=0, crs="EPSG:32633",
                            bounds=(500000, 5000000, 507000, 5006000), size=(350, 300))
    out = tmp_path / "x.tif"
    base = ("run", "stack", "--set", f"inputs={json.dumps([str(files[0]), str(coarse)])}", "--set", f"output={out}",
            "--cluster", dask_cluster, "--ledger", sqlite_url)
    p = _cli(*base)
    assert p.returncode == 2 and "STACK_MISMATCH" in p.stderr and "coarse.tif" in p.stderr, p.stderr
    assert "align=true" in p.stderr and "Traceback" not in p.stderr and not out.exists()
    p = _cli(*base, "--set", "align=true")
    assert p.returncode == 0, p.stderr
    with rasterio.open(out) as ds, rasterio.open(coarse) as c:
        assert ds.count == 2 and (ds.width, ds.height) == (700, 600)
        np.testing.assert_array_equal(ds.read(1), data[0])
        np.testing.assert_array_equal(ds.read(2), c.read(1).repeat(2, axis=0).repeat(2, axis=1))  # nearest


def test_a_file_of_another_dtype_is_refused(periods, raster_factory, tmp_path, sqlite_url):
    files, _ = periods
    floats = raster_factory("floats.tif", dtype="float32", **GRID)
    out = tmp_path / "x.tif"
    p = _cli("run", "stack", "--set", f"inputs={json.dumps([str(files[0]), str(floats)])}", "--set", f"output={out}",
             "--ledger", sqlite_url, "--workers", "1")
    assert p.returncode == 2 and "STACK_MISMATCH" in p.stderr and "floats.tif" in p.stderr, p.stderr
    assert "float32" in p.stderr and not out.exists()

