"""geoproc.open on several rasters (a list, a directory) and reprojection on open, against a GDAL warp."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from dask.base import tokenize
from kit.rasters import write_geotiff
from rasterio.warp import Resampling, reproject, transform_bounds

import geoproc
from geoproc.errors import InvalidInput

UTM_BOUNDS = (500000, 5000000, 510240, 5010240)


@pytest.fixture
def two_crs(tmp_path):
    """One float32 raster in UTM 33N and one in EPSG:4326 over the same place, with different values."""
    h = w = 512
    yy, xx = np.mgrid[0:h, 0:w]
    a = write_geotiff(tmp_path / "utm.tif", crs="EPSG:32633", bounds=UTM_BOUNDS, size=(w, h), dtype="float32",
                      nodata=-9999, data=((xx + 2 * yy) % 97).astype("float32")[np.newaxis],
                      tiled=True, blockxsize=256, blockysize=256)
    geo = transform_bounds("EPSG:32633", "EPSG:4326", *UTM_BOUNDS)
    b = write_geotiff(tmp_path / "geo.tif", crs="EPSG:4326", bounds=geo, size=(w, h), dtype="float32",
                      nodata=-9999, data=((3 * xx + yy) % 89).astype("float32")[np.newaxis],
                      tiled=True, blockxsize=256, blockysize=256)
    for path, when in ((a, "2024:05:01 10:00:00"), (b, "2024:06:01 10:00:00")):
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(TIFFTAG_DATETIME=when)
    return a, b


def _gdal_onto(path, grid, resampling=Resampling.nearest):
    out = np.full(grid.shape, -9999, "float32")
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=grid.transform, dst_crs=grid.crs.to_wkt(),
                  dst_nodata=-9999, resampling=resampling)
    return out


def test_two_crs_on_one_grid_equal_a_gdal_warp_then_numpy(two_crs):
    a, b = two_crs
    cube = geoproc.open([str(a), str(b)], crs="EPSG:32633", resolution=40, bounds=(501000, 5001000, 509000, 5009000))
    assert cube.dims == ("time", "band", "y", "x") and cube.shape == (2, 1, 200, 200)
    assert cube.rio.crs.to_epsg() == 32633
    assert str(cube.time.values[0]).startswith("2024-05-01") and list(cube.source.values) == [str(a), str(b)]
    total = cube.where(cube != -9999).sum("time", min_count=2).isel(band=0)
    got = total.values
    grid = cube.odc.geobox
    ra, rb = _gdal_onto(a, grid), _gdal_onto(b, grid)
    want = np.where((ra != -9999) & (rb != -9999), ra + rb, np.nan)
    same = np.isclose(got, want, equal_nan=True)
    assert same.mean() > 0.99, same.mean()  # nearest-neighbour pixel choices may differ at a few edges
    assert cube.data.name == geoproc.open([str(a), str(b)], crs="EPSG:32633", resolution=40,
                                          bounds=(501000, 5001000, 509000, 5009000)).data.name


def test_reprojecting_one_raster_on_open(two_crs):
    _, b = two_crs
    one = geoproc.open(str(b), crs="EPSG:32633", resolution=20)
    assert one.dims == ("band", "y", "x") and one.rio.crs.to_epsg() == 32633
    assert one.odc.geobox.resolution.x == 20
    want = _gdal_onto(b, one.odc.geobox)
    same = np.isclose(one.values[0], want)
    assert same.mean() > 0.99
    assert tokenize(one) == tokenize(geoproc.open(str(b), crs="EPSG:32633", resolution=20))  # the job identity


def test_a_directory_opens_as_a_time_stack(two_crs, tmp_path, dask_cluster, sqlite_url):
    cube = geoproc.open(str(tmp_path), crs="EPSG:32633", resolution=80)
    assert cube.sizes["time"] == 2 and cube.dims == ("time", "band", "y", "x")
    mean = cube.where(cube != -9999).mean("time").rio.write_nodata(np.nan)
    res = geoproc.write(mean, str(tmp_path / "mean.zarr"), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    again = geoproc.write(geoproc.open(str(tmp_path), crs="EPSG:32633", resolution=80).pipe(
        lambda c: c.where(c != -9999).mean("time").rio.write_nodata(np.nan)), str(tmp_path / "mean.zarr"),
        cluster=dask_cluster, ledger=sqlite_url)
    assert again.cached and again.job_id == res.job_id  # reprojection is named by content, not uuid


def test_bounds_that_miss_every_input_are_refused(two_crs):
    a, b = two_crs
    with pytest.raises(InvalidInput, match="no input overlaps the output grid") as e:
        geoproc.open([str(a), str(b)], crs="EPSG:32633", resolution=40, bounds=(0, 0, 1000, 1000))
    assert e.value.code == "NO_OVERLAP"
    with pytest.raises(InvalidInput) as e:
        geoproc.open([])
    assert e.value.code == "NOTHING_TO_OPEN"


def test_a_file_of_several_subdatasets_is_refused_with_their_names(tmp_path):
    import xarray as xr

    ds = xr.Dataset({"a": (("y", "x"), np.zeros((4, 5), "float32")), "b": (("y", "x"), np.ones((4, 5), "float32"))},
                    coords={"y": np.arange(4.0), "x": np.arange(5.0)})
    ds.to_netcdf(tmp_path / "two.nc")
    with pytest.raises(InvalidInput, match="holds 2 rasters") as info:
        geoproc.open(str(tmp_path / "two.nc"))
    assert info.value.code == "SUBDATASETS" and ":a" in str(info.value) and ":b" in str(info.value)
