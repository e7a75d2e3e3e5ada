"""COG creation through the cog job's handlers: tiers, pixels, reprojection, overviews, checks, real rasters."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject
from rio_cogeo.cogeo import cog_validate

from geoproc.errors import OutputCheckFailed, OutputExists, TierMismatch, UnsupportedRaster
from geoproc.jobs.cog import Params, output_url, route
from geoproc.raster.checks import check_overviews
from geoproc.raster.stats import band_stats


def open_out(result):
    return rasterio.open(result["output"])


@pytest.mark.parametrize("tier,compression,dtype,predictor", [
    ("analysis", "deflate", "float32", "3"), ("analysis", "deflate", "uint16", "2"),
    ("archive", "zstd", "float32", "3"), ("archive", "zstd", "int16", "2"),
])
def test_lossless_tiers_keep_every_pixel(raster_factory, convert_one, tier, compression, dtype, predictor):
    src = raster_factory(f"s_{tier}_{dtype}.tif", dtype=dtype, nodata=0)
    v, r = convert_one(src, tier=tier, target_crs="keep")
    assert r["tier"] == tier and r["compression"] == compression and r["crs"] == "EPSG:32633"
    assert cog_validate(r["output"], quiet=True)[0]
    with rasterio.open(src) as a, open_out(r) as b:
        assert np.array_equal(a.read(), b.read())
        assert b.transform == a.transform and b.nodata == a.nodata
        assert b.block_shapes[0] == (512, 512)
        assert b.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == predictor
        assert r["overviews"] == b.overviews(1) == [2]
    data = open(r["output"], "rb").read()
    assert r["size"] == len(data) and r["sha256"] == hashlib.sha256(data).hexdigest()
    assert r["shape"] == [1024, 1024] and r["transform"][0] == 10.0 and r["count"] == 1 and r["dtype"] == dtype


def test_result_contract_keys(raster_factory, convert_one):
    _, r = convert_one(raster_factory("c.tif", nodata=-1))
    for key in ("input", "output", "size", "sha256", "crs", "bounds", "bbox_wgs84", "shape", "transform", "count",
                "dtype", "nodata", "raster_type", "tier", "compression", "overviews", "band_stats", "datetime",
                "warnings"):
        assert key in r, key
    assert set(r["band_stats"][0]) >= {"minimum", "maximum", "mean", "stddev", "valid_percent"}
    import json
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("dtype,nodata,blank", [("uint8", None, False), ("int16", -9999, False),
                                               ("float32", None, False), ("float32", -1, True)])
def test_statistics_recorded_are_those_of_the_output(raster_factory, convert_one, dtype, nodata, blank):
    """The direct route measures the statistics on its uncompressed intermediate: they must be the output's."""
    yy, xx = np.mgrid[0:700, 0:900]
    data = np.stack([(xx * 3 + yy) % 200, (xx - yy) % 97]).astype(dtype)
    if nodata is not None:
        data[:, :100] = nodata
    if blank:
        data[1] = nodata
    if dtype == "float32" and nodata is None:
        data[0, :50] = np.nan
    v, r = convert_one(raster_factory(f"st_{dtype}_{blank}.tif", size=(900, 700), data=data, nodata=nodata),
                       target_crs="keep")
    with rasterio.open(r["output"]) as ds:
        expected = band_stats(ds)
    assert len(r["band_stats"]) == 2
    for got, want in zip(r["band_stats"], expected, strict=True):
        assert got["valid_percent"] == pytest.approx(want["valid_percent"], abs=1e-3)
        for k in ("minimum", "maximum", "mean", "stddev"):
            assert got[k] == (pytest.approx(want[k], rel=1e-9, abs=1e-9) if want[k] is not None else None), k


def test_reprojection_matches_a_gdal_warp(raster_factory, convert_one):
    src = raster_factory("dem.tif", dtype="float32", nodata=-9999)
    v, r = convert_one(src, tier="analysis")
    assert r["crs"] == "EPSG:4326" and r["reprojected"] and r["resampling"]["reproject"] == "bilinear"
    with rasterio.open(src) as a, open_out(r) as b:
        ours = b.read(1, masked=True)
        ref = np.full(b.shape, -9999, "float32")
        reproject(rasterio.band(a, 1), ref, dst_transform=b.transform, dst_crs=b.crs, dst_nodata=-9999,
                  resampling=Resampling.bilinear)
    both = ~ours.mask & (ref != -9999)
    assert both.sum() > 0.9 * ref.size * 0.9
    diff = np.abs(ours.data[both] - ref[both])
    # same kernel, grid and nodata; only the approximate transformer differs (< 1/8 pixel)
    assert np.percentile(diff, 99) < 0.5 and np.median(diff) < 0.05
    w, s, e, n = r["bbox_wgs84"]
    assert 14.9 < w < e < 15.2 and 45.0 < s < n < 45.3


def test_reprojected_raster_without_nodata_gets_a_mask(raster_factory, convert_one):
    src = raster_factory("rgb.tif", bands=3, dtype="uint8")
    _, r = convert_one(src)
    assert r["has_mask"] and r["nodata"] is None and r["count"] == 3
    assert all(b["valid_percent"] < 100 for b in r["band_stats"])  # UTM square → rotated footprint


def test_visualization_tier_is_jpeg_for_rgb(raster_factory, convert_one):
    _, r = convert_one(raster_factory("rgb.tif", bands=3, dtype="uint8"), tier="visualization", target_crs="keep")
    assert r["compression"] == "jpeg" and r["tier"] == "visualization" and r["raster_type"] == "rgb"
    assert cog_validate(r["output"], quiet=True)[0]


def test_visualization_tier_on_a_dem_is_an_error_or_a_reported_fallback(raster_factory, convert_one, tmp_path):
    src = raster_factory("dem.tif", dtype="float32")
    with pytest.raises(TierMismatch):
        convert_one(src, tier="visualization", tier_fallback=False, output=tmp_path / "o1")
    assert not (tmp_path / "o1").exists()
    _, r = convert_one(src, tier="visualization", output=tmp_path / "o2")
    assert r["tier"] == "analysis" and r["requested_tier"] == "visualization" and r["compression"] == "deflate"
    assert any(w.startswith("TIER_FALLBACK") for w in r["warnings"])


def test_categorical_data_is_never_interpolated(raster_factory, convert_one):
    classes = ((np.arange(1024)[None, :] // 37 + np.arange(1024)[:, None] // 53) % 7 + 1).astype("uint8")
    src = raster_factory("lc.tif", data=classes[None], dtype="uint8", nodata=0)
    v, r = convert_one(src)
    assert v["raster_type"] == "categorical" and r["resampling"] == {"overview": "mode", "reproject": "nearest"}
    with open_out(r) as b:
        assert set(np.unique(b.read(1, masked=True).compressed())) <= set(range(1, 8))
    with rasterio.open(r["output"], overview_level=0) as ov:
        assert set(np.unique(ov.read(1, masked=True).compressed())) <= set(range(1, 8))


def test_input_crs_is_assigned_without_resampling(raster_factory, convert_one):
    src = raster_factory("bare.tif", crs=None, dtype="int16", nodata=-1)
    v, r = convert_one(src, input_crs="EPSG:32633", target_crs="keep")
    assert r["crs"] == "EPSG:32633" and v["crs_source"] == "input_crs"
    with rasterio.open(src) as a, open_out(r) as b:
        assert np.array_equal(a.read(), b.read())


def test_empty_overviews_are_caught(tmp_path):
    path = str(tmp_path / "bad.tif")
    prof = dict(driver="GTiff", width=1024, height=1024, count=1, dtype="uint8", tiled=True, blockxsize=512,
                blockysize=512, crs="EPSG:4326", transform=rasterio.transform.from_bounds(0, 0, 1, 1, 1024, 1024))
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(np.zeros((1, 1024, 1024), "uint8"))
        ds.build_overviews([2], Resampling.nearest)
    with rasterio.open(path, "r+") as ds:
        ds.write(np.full((1, 1024, 1024), 200, "uint8"))  # overviews keep the zeros
    stats = [{"minimum": 200, "maximum": 200, "mean": 200.0, "stddev": 0.0, "valid_percent": 100.0}]
    with pytest.raises(OutputCheckFailed, match="overview"):
        check_overviews(path, stats)


def test_existing_outputs_are_reused_or_protected(raster_factory, convert_one, tmp_path):
    src = raster_factory("a.tif", nodata=0)
    out = tmp_path / "o"
    _, first = convert_one(src, output=out)
    _, again = convert_one(src, output=out)
    assert not first["reused"] and again["reused"] and again["sha256"] == first["sha256"]
    raster_factory("a.tif", nodata=0, data=np.ones((1, 1024, 1024), "float32"))  # the input changes
    _, replaced = convert_one(src, output=out)  # written from this same input before: replaced
    assert not replaced["reused"] and replaced["sha256"] != first["sha256"]
    # an output written from another input is protected unless overwrite is asked for
    other = raster_factory("b.tif", nodata=0, directory=tmp_path / "other")
    exact = tmp_path / "exact.tif"
    convert_one(src, output=exact)
    with pytest.raises(OutputExists):
        convert_one(other, output=exact)
    _, forced = convert_one(other, output=exact, overwrite=True)
    assert not forced["reused"]


def test_output_naming_is_mirrored_and_safe():
    p = Params(input="az://in/2025", output="az://silver/cogs")
    assert output_url(p, "a/b.jp2", False) == "az://silver/cogs/a/b.tif"
    assert output_url(p, "x.TIFF", True) == "az://silver/cogs/x.tif"
    assert output_url(Params(input="a.tif", output="/o/exact.tif"), "a.tif", True) == "/o/exact.tif"
    with pytest.raises(ValueError):
        output_url(p, "../escape.tif", False)
    assert Params(src="/a", dst="/b").input == "/a"  # CLI-friendly aliases


def test_route_records_the_size_decision():
    p = Params(input="a", output="b", large_threshold=1000)
    assert route(999, p) == "single" and route(1001, p) == "tiled" and route(None, p) == "single"


def test_datetime_from_tiff_tags(raster_factory, convert_one):
    src = raster_factory("dated.tif", size=(64, 64))
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(TIFFTAG_DATETIME="2023:07:14 09:15:00")
    _, r = convert_one(src)
    assert r["datetime"] == "2023-07-14T09:15:00Z" and r["overviews"] == []


# --- real rasters nobody here wrote ------------------------------------------------------------------------


def test_terra_dem_and_meuse_convert(terra_rasters, convert_one, tmp_path):
    v, r = convert_one(terra_rasters["elev.tif"], output=tmp_path / "elev")
    assert r["crs"] == "EPSG:4326" and not r["reprojected"] and r["dtype"] == "int16" and r["nodata"] == -32768
    assert v["raster_type"] == "dem"
    with rasterio.open(terra_rasters["elev.tif"]) as a, open_out(r) as b:
        assert np.array_equal(a.read(), b.read())
        assert r["band_stats"][0]["minimum"] == int(a.read(1, masked=True).min())
    v, r = convert_one(terra_rasters["meuse.tif"], output=tmp_path / "meuse")
    assert r["crs"] == "EPSG:4326" and r["reprojected"] and v["crs"].startswith("PROJCRS")
    w, s, e, n = r["bbox_wgs84"]
    assert 5.6 < w < e < 5.8 and 50.9 < s < n < 51.0  # the Meuse floodplain near Stein (NL)
    assert cog_validate(r["output"], quiet=True)[0]


def test_terra_logo_has_a_local_crs(terra_rasters, convert_one, tmp_path):
    with pytest.raises(UnsupportedRaster) as err:
        convert_one(terra_rasters["logo.tif"], output=tmp_path / "logo")
    assert err.value.code == "CRS_NOT_GEOREFERENCED"
    _, r = convert_one(terra_rasters["logo.tif"], output=tmp_path / "logo2", target_crs="keep", tier="visualization")
    assert r["bbox_wgs84"] is None and r["compression"] == "jpeg" and r["raster_type"] == "rgb"


def test_check_cog_reports_typed_warnings_and_the_facts_of_the_result(raster_factory, convert_one):
    from geoproc.errors import TaskWarning
    from geoproc.raster.checks import check_cog

    src = raster_factory("typed_warnings.tif", dtype="uint16", nodata=0)
    _, r = convert_one(src, tier="analysis", target_crs="keep")
    facts = check_cog(r["output"])  # the bounded form (windowed statistics) agrees with the conversion's
    assert all(isinstance(w, TaskWarning) and str(w).startswith(f"{w.code}: ") for w in facts["warnings"])
    assert r["warnings"] == [str(w) for w in facts["warnings"]]
    assert facts["band_stats"] == r["band_stats"] and facts["overviews"] == r["overviews"]
    assert (facts["crs"], facts["shape"], facts["dtype"]) == (r["crs"], r["shape"], r["dtype"])
