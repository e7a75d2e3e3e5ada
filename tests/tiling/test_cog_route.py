"""The cog job routes inputs above ``large_threshold`` through the tiled, bounded-memory path."""

from __future__ import annotations

import numpy as np
import rasterio
from kit.rasters import NODATA, smooth

import geoproc
from geoproc.raster.validate import crs_string


def test_large_input_takes_the_tiled_route_and_matches_the_single_path(raster_factory, tmp_path, dask_cluster):
    size = 1536  # 1536 x 1536 x 2 float32 = 18 MiB uncompressed, a 6 MB+ file
    path = raster_factory("big.tif", crs="EPSG:32633", bounds=(500000, 5000000, 530720, 5030720),
                          size=(size, size), nodata=NODATA, data=smooth(2, size, size), tiled=True,
                          blockxsize=512, blockysize=512)
    assert path.stat().st_size > 1_000_000
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    common = dict(input=str(path), target_crs="EPSG:3857", reproject_resampling="bilinear",
                  overview_resampling="average", cluster=dask_cluster, ledger=ledger)
    tiled = geoproc.run("cog", output=str(tmp_path / "tiled" / "big.tif"), large_threshold=1_000_000, **common)
    single = geoproc.run("cog", output=str(tmp_path / "single" / "big.tif"), **common)
    assert tiled.status == single.status == "completed", (tiled.error, single.error)

    def cog_result(res):
        from geoproc.ledger import open_ledger

        rows = open_ledger(ledger).list_tasks(res.job_id, stage=2, limit=None)
        assert len(rows) == 1 and rows[0]["status"] == "completed"
        return rows[0]["result"]

    t, s = cog_result(tiled), cog_result(single)
    assert t["route"] == "tiled" and s["route"] == "single"
    assert set(t) == set(s)  # the same result contract
    assert t["crs"] == s["crs"] == "EPSG:3857" and t["overviews"] and t["compression"] == s["compression"]
    assert t["sha256"] != s["sha256"] and t["size"] > 0
    with rasterio.open(t["output"]) as a, rasterio.open(s["output"]) as b:
        assert crs_string(a.crs) == "EPSG:3857" and a.nodata == b.nodata == NODATA
        assert a.tags().get("GEOPROC_PROVENANCE")  # stamped like the single path's outputs
        assert (a.width, a.height) == (b.width, b.height)
        assert np.allclose(tuple(a.transform)[:6], tuple(b.transform)[:6])
        da, db = a.read(), b.read()
        both = (da != NODATA) & (db != NODATA)
        assert both.mean() > 0.5
        assert ((da != NODATA) != (db != NODATA)).mean() < 0.002  # the footprint's rim only
        assert np.abs(da - db)[both].max() < 1.0  # bilinear on gradients below 1 per pixel
        oa, ob = a.read(1, out_shape=(64, 64)), b.read(1, out_shape=(64, 64))  # from the overviews
        ok = (oa != NODATA) & (ob != NODATA)
        assert np.abs(oa - ob)[ok].max() < 2.0
    for band_t, band_s in zip(t["band_stats"], s["band_stats"], strict=True):
        assert abs(band_t["mean"] - band_s["mean"]) < 0.05


def test_windowed_route_counts_the_statistics_of_its_file(raster_factory, tmp_path):
    """tiled_cog counts the tiles it writes; those counts are the COG's own statistics."""
    from geoproc.raster.assemble import tiled_cog
    from geoproc.raster.profiles import cog_options
    from geoproc.raster.stats import band_stats

    yy, xx = np.mgrid[0:1500, 0:1400]
    data = np.stack([(xx + yy) % 200 + 1, (xx * 3) % 97 + 1]).astype("int16")
    data[:, 100:300, 200:500] = -1
    path = raster_factory("counted.tif", size=(1400, 1500), bounds=(500000, 5000000, 514000, 5015000),
                          data=data, nodata=-1)
    out = tmp_path / "counted_cog.tif"
    with rasterio.open(path) as src:
        done = tiled_cog(src, str(out), target_crs="EPSG:4326", options=cog_options("analysis", "int16"),
                         overview_resampling="nearest", reproject_resampling="nearest", memory_budget=64 * 2**20)
    assert done["tiles"] > 1
    with rasterio.open(out) as ds:
        assert done["band_stats"] == band_stats(ds)
