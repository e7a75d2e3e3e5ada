"""``geoproc plan``: the tiling plan from the header only, its GeoJSON footprints and PNG map."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from geoproc.cli import app
from geoproc.jobs import large_raster


def test_plan_prints_the_plan_and_writes_geojson_and_png(smooth_raster, tmp_path):
    path = smooth_raster("utm33", size=1024, bands=2)
    spec = tmp_path / "big.toml"
    spec.write_text(f'job = "large_raster"\n[params]\ninput = "{path}"\noutput = "{tmp_path / "out"}"\n'
                    'target_crs = "EPSG:3857"\n')
    gj, png = tmp_path / "tiles.geojson", tmp_path / "tiles.png"
    res = CliRunner().invoke(app, ["plan", str(spec), "--set", "tile_size=512", "--geojson", str(gj),
                                   "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "memory per task" in res.output and "bytes to read" in res.output
    assert not (tmp_path / "out").exists()  # nothing ran

    plan = large_raster.make_plan(large_raster.Params(input=str(path), output=str(tmp_path / "out"),
                                                      target_crs="EPSG:3857", tile_size=512), None)
    feats = json.loads(gj.read_text())["features"]
    assert [f["id"] for f in feats] == [t.key for t in plan.tiles()] and len(feats) > 1
    assert [f["properties"]["window"] for f in feats] == [list(t.outer) for t in plan.tiles()]

    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10  # outline, tiles and labels, not a blank page
    red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
    assert red.sum() > 500  # the tile outlines are drawn

    js = CliRunner().invoke(app, ["plan", "large_raster", "--json", "--set", f"input={path}", "--set",
                                  "output=x", "--set", "tile_size=512", "--set", "target_crs=EPSG:3857"])
    assert js.exit_code == 0, js.output
    s = json.loads(js.output)
    assert s["tiles"] == len(feats) and s["memory_per_task"] <= s["memory_budget"]


def test_plan_refuses_other_jobs():
    res = CliRunner().invoke(app, ["plan", "hello_world"])
    assert res.exit_code == 2, res.output  # invalid parameters, not a crash
    assert isinstance(res.exception, SystemExit) and "plans large_raster, process, stack, mosaic jobs only" in res.output
