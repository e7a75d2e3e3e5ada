"""Tiled reprojection against GDAL's warp of the whole raster, in several CRSs, for both outputs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from kit.rasters import CASES, NODATA, reference_warp
from kit.runner import large_raster as run_inline

TOL = 1.0  # bilinear, gradients below 0.6/px: GDAL's approximate transformer moves samples by < 0.125 px
EDGE_PIXELS = 0.002  # share of pixels whose valid/nodata state may differ (the footprint's rim only)


def compare(mosaic: np.ndarray, ref: np.ndarray, tile_size: int) -> None:
    vm, vr = mosaic != NODATA, ref != NODATA
    assert vr.sum() > 0.2 * vr.size
    assert (vm != vr).sum() <= EDGE_PIXELS * vr.sum(), "gaps or extra pixels in the mosaic"
    both = vm & vr
    diff = np.abs(mosaic - ref)
    assert diff[both].max() < TOL
    assert np.quantile(diff[both], 0.99) < 0.25
    # seams: rows and columns on both sides of every tile edge are as close to GDAL as the rest
    for k in range(tile_size, ref.shape[1], tile_size):
        for lines in (np.s_[:, :, k - 1:k + 1], np.s_[:, k - 1:k + 1, :]):
            if lines[1].start is not None and lines[1].start >= ref.shape[1]:
                continue
            sel = both[lines]
            if sel.any():
                assert diff[lines][sel].max() < TOL
                assert (vm[lines] == vr[lines]).mean() > 0.99


@pytest.mark.parametrize("dst", ["EPSG:4326", "EPSG:3857"])
@pytest.mark.parametrize("case", list(CASES))
def test_single_and_tiles_match_a_whole_raster_warp(smooth_raster, tmp_path, case, dst):
    path = smooth_raster(case)
    common = dict(input=str(path), target_crs=dst, tile_size=512, reproject_resampling="bilinear",
                  overview_resampling="average", bands=[3, 1])
    single = run_inline(**common, output=str(tmp_path / "single"), mode="single")
    tiles = run_inline(**common, output=str(tmp_path / "tiles"), mode="tiles")
    plan = single["plan"]["plan"]
    assert len(single["tiles"]) > 1, "the case must really be tiled"
    ref = reference_warp(path, plan, bands=[3, 1])

    # single COG: same grid, values of the whole-raster warp, bands in the order asked (3, 1)
    out = single["final"]
    with rasterio.open(out["output"]) as ds:
        assert (ds.width, ds.height) == (plan["width"], plan["height"])
        assert np.allclose(tuple(ds.transform)[:6], plan["transform"])
        assert list(ds.bounds) == pytest.approx(out["bounds"])  # recorded = real
        assert ds.overviews(1) and ds.nodata == NODATA
        compare(ds.read(), ref, 512)
    assert not (tmp_path / "single" / f".{path.stem}.parts").exists()

    # tiles: every tile's recorded footprint is its file's; the VRT mosaic equals the warp too
    fin = tiles["final"]
    for item in fin["items"]:
        with rasterio.open(item["href"]) as ds:
            assert list(ds.bounds) == pytest.approx(item["bounds"], abs=1e-9)
            assert [ds.height, ds.width] == item["shape"]
    with rasterio.open(fin["mosaic"]) as ds:
        assert (ds.width, ds.height) == (plan["width"], plan["height"])
        compare(ds.read(), ref, 512)


def test_antimeridian_outputs_cross_180_with_a_stac_bbox(smooth_raster, tmp_path):
    path = smooth_raster("antimeridian_utm60")
    res = run_inline(input=str(path), output=str(tmp_path / "t"), mode="tiles", tile_size=512)
    west, south, east, north = res["final"]["bbox_wgs84"]
    assert 175 < west < 180 and -180 < east < -175  # west > east: crosses the antimeridian
    assert res["final"]["items"] and all(len(i["bbox"]) == 4 for i in res["final"]["items"])


def test_halo_tiles_overlap_with_identical_pixels(smooth_raster, tmp_path):
    path = smooth_raster("utm33")
    res = run_inline(input=str(path), output=str(tmp_path / "h"), mode="tiles", tile_size=512, halo=32,
                     target_crs="EPSG:3857", reproject_resampling="bilinear")
    items = {i["id"].rsplit("_", 1)[1]: i for i in res["final"]["items"]}
    with rasterio.open(items["r0c0"]["href"]) as a, rasterio.open(items["r0c1"]["href"]) as b:
        assert a.width == 512 + 32 and b.bounds.left < a.bounds.right  # neighbours overlap by 2 x 32 px
        left = a.read(window=((0, 512), (512 - 32, 512 + 32)))
        right = b.read(window=((0, 512), (0, 64)))
        assert np.abs(left - right).max() < 0.1  # same pixels up to GDAL's approximate transformer
    with rasterio.open(res["final"]["mosaic"]) as ds:  # the mosaic uses each tile's own window only
        assert ds.width == res["plan"]["plan"]["width"]


def test_nodata_holes_in_the_source_stay_holes(raster_factory, tmp_path):
    """Tiles whose source window holds nodata warp with the masked kernel, the others without it:
    both must agree with the whole-raster warp, hole edges included."""
    from kit.rasters import smooth

    crs, bounds = CASES["utm33"]
    data = smooth(2, 1024, 1024)
    data[:, 300:700, 450:600] = NODATA  # a hole across tile edges
    data[:, 900:, :100] = NODATA  # and one in a corner
    path = raster_factory("holes.tif", crs=crs, bounds=bounds, size=(1024, 1024), nodata=NODATA, data=data,
                          tiled=True, blockxsize=256, blockysize=256)
    single = run_inline(input=str(path), target_crs="EPSG:3857", tile_size=512, reproject_resampling="bilinear",
                        output=str(tmp_path / "single"), mode="single")
    ref = reference_warp(path, single["plan"]["plan"])
    with rasterio.open(single["final"]["output"]) as ds:
        out = ds.read()
    compare(out, ref, 512)
    assert (out == NODATA).sum() == pytest.approx((ref == NODATA).sum(), rel=0.01)
