"""geoproc.write to one COG and to COG tiles: parts written by region tasks, assembled with real overviews."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from kit.rasters import write_geotiff, write_scene
from kit.stac import validate_item
from rasterio.enums import Resampling
from rio_cogeo.cogeo import cog_validate

import geoproc
from geoproc.errors import OutputExists
from geoproc.ledger import open_ledger


@pytest.fixture
def scene(tmp_path):
    """A 4-band uint16 scene (nodata 0 in a corner), 1500 x 1100 px, tiled 256."""
    path = tmp_path / "scene.tif"
    return path, write_scene(path, size=(1500, 1100), nodata_corner=(130, 170))


def _ndvi(a):
    red, nir = a.sel(band="red").astype("float32"), a.sel(band="nir").astype("float32")
    return ((nir - red) / (nir + red)).where(a.sel(band="red") != 0).rio.write_nodata(np.nan)


def test_a_float_cog_equals_numpy_and_is_a_valid_cog(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    out = tmp_path / "out" / "ndvi.tif"
    res = geoproc.write(_ndvi(geoproc.open(str(path))), str(out), format="cog", region_bytes="1MiB",
                        cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    assert next(s for s in res.stages if s.name == "regions").total > 4
    valid, errors, _ = cog_validate(str(out), strict=True)
    assert valid, errors
    red, nir = data[2].astype("float32"), data[3].astype("float32")
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(data[2] != 0, (nir - red) / (nir + red), np.nan).astype("float32")
    with rasterio.open(out) as ds:
        got = ds.read(1)
        assert ds.crs.to_epsg() == 32633 and np.isnan(ds.nodata)
        assert ds.overviews(1) == [2, 4] and ds.block_shapes[0] == (512, 512)
        assert ds.profile["compress"].lower() == "deflate"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    assert res.result["sha256"] and res.result["size"] == out.stat().st_size
    assert not (tmp_path / "out" / ".ndvi.parts").exists()  # the parts are gone once assembled
    item = json.loads((tmp_path / "out" / "ndvi.json").read_text())  # its STAC item, beside it
    validate_item(item)
    asset = item["assets"]["data"]
    assert asset["href"] == str(out) and asset["file:checksum"] == "1220" + res.result["sha256"]
    assert asset["raster:bands"][0]["statistics"]["maximum"] == pytest.approx(float(np.nanmax(want)))
    assert item["properties"]["proj:code"] == "EPSG:32633" and item["properties"]["geoproc:job_id"] == res.job_id
    stats = res.result["band_stats"][0]
    assert stats["maximum"] == pytest.approx(float(np.nanmax(want)))
    again = geoproc.write(_ndvi(geoproc.open(str(path))), str(out), format="cog", region_bytes="1MiB",
                          cluster=dask_cluster, ledger=sqlite_url)
    assert again.cached and again.executed == 0


def test_overviews_match_gdal_on_the_same_data(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    out = tmp_path / "scene_cog.tif"
    res = geoproc.write(geoproc.open(str(path)), str(out), format="cog", region_bytes="2MiB",
                        cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    ref = write_geotiff(tmp_path / "ref.tif", size=(1500, 1100), dtype="uint16", nodata=0, data=data,
                        tiled=True, blockxsize=512, blockysize=512)
    with rasterio.open(ref, "r+") as ds:
        ds.build_overviews([2, 4], Resampling.average)
    with rasterio.open(out) as ours, rasterio.open(ref) as gdal:
        np.testing.assert_array_equal(ours.read(), data)
        assert ours.overviews(1) == [2, 4]
        for level in (2, 4):
            shape = (4, ours.height // level, ours.width // level)
            a = ours.read(out_shape=shape, resampling=Resampling.nearest).astype("int32")
            b = gdal.read(out_shape=shape, resampling=Resampling.nearest).astype("int32")
            assert (a != 0).mean() > 0.9  # real overviews, not empty ones
            assert np.abs(a - b).max() <= 1, level
    assert cog_validate(str(out), strict=True)[0]


def test_tiles_and_their_vrt(scene, tmp_path, dask_cluster, sqlite_url):
    path, data = scene
    out = tmp_path / "tiles"
    res = geoproc.write(geoproc.open(str(path), bands=["red", "nir"]), str(out), format="tiles",
                        region_bytes="2MiB", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    tiles = sorted(out.glob("tiles_r*c*.tif"))
    assert len(tiles) == res.result["tiles"] > 1
    assert all(cog_validate(str(t), strict=True)[0] for t in tiles)
    with rasterio.open(out / "tiles.vrt") as vrt:
        np.testing.assert_array_equal(vrt.read(), data[2:4])
    assert (out / "tiles_tiles.geojson").exists()


def test_a_foreign_tif_is_refused_unless_overwrite(scene, tmp_path, dask_cluster, sqlite_url):
    path, _ = scene
    out = tmp_path / "taken.tif"
    write_geotiff(out, size=(10, 10))
    a = geoproc.open(str(path), bands=["red"])
    res = geoproc.write(a, str(out), format="cog", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "failed"
    led = open_ledger(sqlite_url, read_only=True)
    try:
        (failed,) = led.list_tasks(res.job_id, status="failed")
    finally:
        led.close()
    assert failed["error_code"] == OutputExists.code
    with rasterio.open(out) as ds:
        assert ds.width == 10  # untouched
    res = geoproc.write(a, str(out), format="cog", overwrite=True, cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed"
    with rasterio.open(out) as ds:
        assert ds.width == 1500


def test_the_plan_of_a_write_is_what_the_write_runs(scene, tmp_path, dask_cluster, sqlite_url):
    path, _ = scene
    ndvi = _ndvi(geoproc.open(str(path)))
    out = tmp_path / "planned.tif"
    plan = geoproc.plan_write(ndvi, str(out), format="cog", region_bytes="1MiB", geojson=str(tmp_path / "r.geojson"),
                              png=str(tmp_path / "r.png"))
    assert not out.exists()  # nothing ran
    assert plan["regions"] > 4 and plan["region_shape"] == [512, 512] and plan["region_output_bytes"] == 512 * 512 * 4
    assert plan["bytes_to_write"] == 1100 * 1500 * 4 and plan["region_tasks"] > 0
    feats = json.loads((tmp_path / "r.geojson").read_text())["features"]
    assert len(feats) == plan["regions"] and feats[0]["id"] == "r0c0"
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = geoproc.write(ndvi, str(out), format="cog", region_bytes="1MiB", cluster=dask_cluster, ledger=sqlite_url)
    assert res.job_id == plan["job_id"]
    assert next(s for s in res.stages if s.name == "regions").total == plan["regions"]
