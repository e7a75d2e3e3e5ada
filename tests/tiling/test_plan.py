"""The tiling plan as a value object: plain numbers, no pixel reads."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_bounds
from rasterio.warp import calculate_default_transform

from geoproc.raster.tiling import BLOCK, SourceInfo, TilingPlan, output_grid


def source(crs="EPSG:32633", bounds=(500000, 5000000, 600000, 5100000), size=(10000, 10000), count=3,
           dtype="uint8", nodata=0.0) -> SourceInfo:
    w, h = size
    return SourceInfo(url="header-only.tif", crs=crs, transform=tuple(from_bounds(*bounds, w, h))[:6], width=w,
                      height=h, count=count, dtype=dtype, nodata=nodata)


def test_tiles_partition_the_output_grid_exactly():
    plan = TilingPlan.build(source(), "EPSG:3857", tile_size=1024)
    covered = np.zeros((plan.height, plan.width), dtype=np.uint8)
    for t in plan:  # every tile, empty ones too
        x, y, w, h = t.window
        covered[y:y + h, x:x + w] += 1
        assert t.key == f"r{t.row}c{t.col}"
    assert covered.min() == 1 and covered.max() == 1  # no gap, no overlap, no duplicated row
    rows, cols = plan.shape
    assert (rows, cols) == (-(-plan.height // 1024), -(-plan.width // 1024))


def test_output_grid_is_gdals_suggested_warp_output():
    src = source()
    plan = TilingPlan.build(src, "EPSG:4326", tile_size=2048)
    tr, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                           500000, 5000000, 600000, 5100000)
    assert (plan.width, plan.height) == (w, h)
    assert np.allclose(plan.transform, tuple(tr)[:6])


def test_tile_size_follows_the_memory_budget_in_512_blocks():
    src = source(size=(20000, 20000), count=4, dtype="float32")
    sizes = []
    for budget in (256, 512, 1024, 2048):
        plan = TilingPlan.build(src, "EPSG:3857", memory_budget=budget * 2**20)
        assert plan.tile_size % BLOCK == 0
        assert plan.memory_per_task <= budget * 2**20
        sizes.append(plan.tile_size)
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_each_tile_names_the_source_window_it_needs():
    src = source(size=(4000, 4000), bounds=(500000, 5000000, 540000, 5040000))
    plan = TilingPlan.build(src, "EPSG:4326", tile_size=512, resampling="bilinear")
    from rasterio.warp import transform as warp_points

    for t in plan.tiles():
        # the centre and corners of the tile, mapped into source pixels, fall inside its window
        x0, y0, w, h = t.outer
        px, py = np.array([x0, x0 + w, x0, x0 + w, x0 + w / 2]), np.array([y0, y0, y0 + h, y0 + h, y0 + h / 2])
        X, Y = plan.affine @ (px, py)
        sx, sy = warp_points(plan.crs, src.crs, X.tolist(), Y.tolist())
        col, row = ~src.affine @ (np.array(sx), np.array(sy))
        c0, r0, cw, rh = t.src_window
        inside = (col >= 0) & (col <= src.width) & (row >= 0) & (row <= src.height)
        assert ((col[inside] >= c0) & (col[inside] <= c0 + cw) & (row[inside] >= r0) & (row[inside] <= r0 + rh)).all()
        assert cw < 1000 and rh < 1000  # a window, not the whole raster


def test_tiles_outside_the_source_footprint_are_empty():
    # a polar stereographic square in EPSG:4326 leaves tiles with no source at all
    src = source(crs="EPSG:3031", bounds=(-2000000, 1000000, -1000000, 2000000), size=(4000, 4000))
    plan = TilingPlan.build(src, "EPSG:4326", tile_size=512)
    assert 0 < len(plan.tiles()) < len(plan)
    assert plan.summary()["empty_tiles"] == len(plan) - len(plan.tiles())


def test_halo_grows_tiles_but_keeps_their_own_window():
    plan = TilingPlan.build(source(size=(3000, 3000)), "EPSG:3857", tile_size=1024, halo=16)
    t = plan.tile(1, 1)
    assert t.outer == (t.window[0] - 16, t.window[1] - 16, t.window[2] + 32, t.window[3] + 32)
    assert t.inner == (16, 16, 1024, 1024)
    corner = plan.tile(0, 0)
    assert corner.outer[:2] == (0, 0) and corner.inner[:2] == (0, 0)


def test_antimeridian_grid_continues_past_180_instead_of_spanning_the_globe():
    src = source(crs="EPSG:32660", bounds=(600000, 5000000, 900000, 5300000), size=(3000, 3000))
    _, gdal_w, _ = calculate_default_transform(src.crs, "EPSG:4326", 3000, 3000, 600000, 5000000, 900000, 5300000)
    tr, w, h = output_grid(src, "EPSG:4326")
    left, right = tr.c, tr.c + w * tr.a
    assert 175 < left < 180 < right < 185  # crosses 180 continuously
    assert w < 10 * 3000 and gdal_w != w
    for crs in ("EPSG:4326", "EPSG:3857"):
        plan = TilingPlan.build(src, crs, tile_size=1024)
        assert len(plan.tiles()) == len(plan) or len(plan.tiles()) >= len(plan) - 2
        assert all(t.src_window[2] > 0 for t in plan.tiles())


def test_bands_are_kept_in_the_given_order_and_checked():
    plan = TilingPlan.build(source(count=8), "EPSG:3857", bands=[5, 3, 2], tile_size=2048)
    assert plan.bands == (5, 3, 2)
    with pytest.raises(ValueError, match="out of range"):
        TilingPlan.build(source(count=3), "EPSG:3857", bands=[5, 3, 2])
    with pytest.raises(ValueError, match="multiple of 512"):
        TilingPlan.build(source(), "EPSG:3857", tile_size=1000)


def test_plan_round_trips_through_json():
    import json

    plan = TilingPlan.build(source(), "EPSG:4326", tile_size=1024, halo=8, bands=[3, 1])
    again = TilingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    s = plan.summary()
    assert s["tiles"] == len(plan.tiles()) and s["bytes_to_write"] > 0 and s["bytes_to_read"] > 0


def test_footprints_are_geojson_in_degrees():
    plan = TilingPlan.build(source(), "EPSG:3857", tile_size=2048)
    fc = plan.footprints()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(plan.tiles())
    ring = np.array(fc["features"][0]["geometry"]["coordinates"][0])
    assert ring.shape[1] == 2 and (ring[:, 0] > 14).all() and (ring[:, 0] < 17).all()
