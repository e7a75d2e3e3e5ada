"""The mosaic job: pieces put back together, reprojected inputs, overlap rules, on worker processes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import rasterio
from kit.drivers import geoproc_cmd
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject

import geoproc
from geoproc.ledger import open_ledger

X0, Y0, RES = 500003.0, 5010000.0, 10.0  # a lattice not anchored at multiples of the resolution
H, W = 600, 700


def smooth(h=H, w=W, bands=1):
    yy, xx = np.mgrid[0:h, 0:w].astype("float32")
    return np.stack([1000 + 300 * np.sin(xx / 60 + b) * np.cos(yy / 80) + 0.5 * (xx + yy) for b in range(bands)])


def write(path, data, *, x0=X0, y0=Y0, crs="EPSG:32633", nodata=-9999.0, res=RES):
    b, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=b, dtype=data.dtype, crs=crs,
                       transform=from_origin(x0, y0, res, res), nodata=nodata, tiled=True, blockxsize=256,
                       blockysize=256) as dst:
        dst.write(data)
    return str(path)


def cut(data, tmp_path, pad=0):
    """Four pieces of ``data`` (2 x 2), each widened by ``pad`` pixels into its neighbours."""
    _, h, w = data.shape
    pieces = []
    for i, (r0, r1) in enumerate(((0, h // 2), (h // 2, h))):
        for j, (c0, c1) in enumerate(((0, w // 2 + 13), (w // 2 + 13, w))):
            a0, a1, b0, b1 = max(0, r0 - pad), min(h, r1 + pad), max(0, c0 - pad), min(w, c1 + pad)
            pieces.append(write(tmp_path / f"piece_{i}{j}.tif", data[:, a0:a1, b0:b1].copy(), x0=X0 + b0 * RES,
                                y0=Y0 - a0 * RES))
    return pieces


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("pad", [0, 40])
def test_pieces_of_a_raster_give_it_back_exactly(pad, tmp_path, dask_cluster, sqlite_url):
    data = smooth(bands=2)
    data[:, :30, :40] = -9999.0
    pieces = cut(data, tmp_path, pad)
    out = tmp_path / "m.tif"
    args = ("run", "mosaic", "--set", f"inputs={json.dumps(pieces)}", "--set", f"output={out}",
            "--set", "chunks=[256, 256]", "--set", "region_bytes=64KiB", "--cluster", dask_cluster, "--ledger",
            sqlite_url, "--json")
    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height, ds.count) == (W, H, 2)
        assert ds.transform == from_origin(X0, Y0, RES, RES) and ds.nodata == -9999.0
        np.testing.assert_array_equal(ds.read(), data)
    assert res["result"]["inputs"] == 4
    led = open_ledger(sqlite_url, read_only=True)
    try:  # each region task was given only the pieces that reach it
        tasks = led.list_tasks(res["job_id"], stage=1, limit=None)
    finally:
        led.close()
    reach = [len(json.loads(t["params"])["source"]["urls"]) if isinstance(t["params"], str)
             else len(t["params"]["source"]["urls"]) for t in tasks]
    assert len(tasks) == 4 and min(reach) == 1 and max(reach) <= 4  # a COG's regions: whole 512 blocks
    assert json.loads(_cli(*args).stdout)["executed"] == 0


def test_a_piece_in_another_crs_is_reprojected(tmp_path, dask_cluster, sqlite_url):
    data = smooth()
    pieces = cut(data, tmp_path)
    # the last piece, warped to geographic coordinates
    with rasterio.open(pieces[3]) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        warped = np.full((1, h, w), -9999.0, dtype="float32")
        reproject(src.read(), warped, src_transform=src.transform, src_crs=src.crs, dst_transform=t,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear, dst_nodata=-9999.0)
    with rasterio.open(tmp_path / "piece_11_wgs84.tif", "w", driver="GTiff", width=w, height=h, count=1,
                       dtype="float32", crs="EPSG:4326", transform=t, nodata=-9999.0) as dst:
        dst.write(warped)
    inputs = [*pieces[:3], str(tmp_path / "piece_11_wgs84.tif")]
    # the warped piece's extent is wider than the original's: the grid is given, the original's
    res = geoproc.run("mosaic", inputs=inputs, output=str(tmp_path / "m.tif"), resampling="bilinear",
                      bounds=(X0, Y0 - H * RES, X0 + W * RES, Y0), region_bytes="128KiB", cluster=dask_cluster,
                      ledger=sqlite_url)
    assert res.status == "completed", res.error
    with rasterio.open(tmp_path / "m.tif") as ds:
        got = ds.read(1)
        assert ds.crs.to_epsg() == 32633 and ds.transform == from_origin(X0, Y0, RES, RES)
    h2, w2 = H // 2, W // 2 + 13
    np.testing.assert_array_equal(got[:h2, :], data[0, :h2, :])  # the pieces on the grid: exact
    np.testing.assert_array_equal(got[h2:, :w2], data[0, h2:, :w2])
    inner = got[h2 + 3:-3, w2 + 3:-3]  # the warped piece, twice resampled, away from its edges
    assert (inner != -9999.0).all()
    np.testing.assert_allclose(inner, data[0, h2 + 3:-3, w2 + 3:-3], atol=6.0)


@pytest.mark.parametrize("rule", ["first", "last", "min", "max", "mean"])
def test_overlap_rules_are_nodata_aware(rule, tmp_path, dask_cluster, sqlite_url):
    rng = np.random.default_rng(7)
    a = rng.integers(1, 1000, (1, 300, 400)).astype("uint16")
    b = rng.integers(1, 1000, (1, 300, 400)).astype("uint16")
    a[0, 10:20, 10:20] = 0
    b[0, 15:30, 15:30] = 0
    pa = write(tmp_path / "a.tif", a, nodata=0)
    pb = write(tmp_path / "b.tif", b, nodata=0, x0=X0 + 100 * RES)  # overlaps a's columns 100..399
    res = geoproc.run("mosaic", inputs=[pa, pb], overlap=rule, output=str(tmp_path / f"{rule}.tif"),
                      region_bytes="64KiB", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    full = np.full((2, 300, 500), np.nan)
    full[0, :, :400] = np.where(a[0] == 0, np.nan, a[0])
    full[1, :, 100:] = np.where(b[0] == 0, np.nan, b[0])
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        want = {"first": np.where(np.isnan(full[0]), full[1], full[0]),
                "last": np.where(np.isnan(full[1]), full[0], full[1]),
                "min": np.nanmin(full, axis=0), "max": np.nanmax(full, axis=0),
                "mean": np.rint(np.nanmean(full, axis=0))}[rule]
    want = np.where(np.isnan(want), 0, want).astype("uint16")
    with rasterio.open(tmp_path / f"{rule}.tif") as ds:
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0
        np.testing.assert_array_equal(ds.read(1), want)


def test_bad_mosaics_are_refused_before_anything_runs(tmp_path, sqlite_url):
    one = write(tmp_path / "one.tif", smooth(100, 100))
    two = write(tmp_path / "two.tif", smooth(100, 100, bands=2), x0=X0 + 1000)
    out = tmp_path / "x.tif"
    for sets, code in (([f"inputs={json.dumps([one, two])}"], "BANDS_DIFFER"),
                       ([f"inputs={json.dumps([one])}", "bounds=[0, 0, 100, 100]"], "NO_OVERLAP")):
        args = ["run", "mosaic", *[x for s in sets for x in ("--set", s)], "--set", f"output={out}",
                "--ledger", sqlite_url, "--workers", "1"]
        p = _cli(*args)
        assert p.returncode == 2 and code in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not out.exists()


def test_plan_shows_the_inputs_reaching_each_region(tmp_path):
    pieces = cut(smooth(), tmp_path)
    sets = ("--set", f"inputs={json.dumps(pieces)}", "--set", f"output={tmp_path / 'm.zarr'}", "--set", "format=zarr",
            "--set", "chunks=[256, 256]", "--set", "region_bytes=64KiB")  # a store's regions: whole 256 chunks
    p = _cli("plan", "mosaic", *sets, "--geojson", str(tmp_path / "r.json"), "--png", str(tmp_path / "r.png"),
             "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["regions"] == 9 and plan["inputs"] == 4 and plan["inputs_per_region"]["max"] == 4
    reach = {f["id"]: f["properties"]["inputs"] for f in json.loads((tmp_path / "r.json").read_text())["features"]}
    assert reach["r0c0"] == 1 and reach["r1c1"] == 4  # a corner; the middle, where the four pieces meet
    assert (tmp_path / "r.png").stat().st_size > 10_000 and not (tmp_path / "m.zarr").exists()
    table = _cli("plan", "mosaic", *sets)
    assert table.returncode == 0 and "up to 4 per region" in table.stdout, table.stderr


def test_real_grids_on_one_grid(proj_grids, tmp_path, dask_cluster, sqlite_url):
    """proj-data's three CHENYX06 grids (4 float32 bands each, one grid, EPSG:4326), nobody here wrote them."""
    files = [str(proj_grids[n]) for n in ("CHENYX06.gsb", "CHENYX06a.gsb", "CHENYX06_etrs.gsb")]
    arrays = []
    for f in files:
        with rasterio.open(f) as src:
            arrays.append(src.read())
            transform, crs = src.transform, src.crs
    for rule, want, exact in (("max", np.maximum.reduce(arrays), True), ("mean", sum(arrays) / np.float32(3), False)):
        out = tmp_path / f"chenyx_{rule}.tif"
        res = geoproc.run("mosaic", inputs=files, overlap=rule, output=str(out), region_bytes="256KiB",
                          cluster=dask_cluster, ledger=sqlite_url)
        assert res.status == "completed", res.error
        with rasterio.open(out) as ds:
            assert ds.count == 4 and ds.crs == crs and ds.transform.almost_equals(transform)
            got = ds.read()
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_real_dem_cut_in_pieces_comes_back_exactly(terra_rasters, tmp_path, dask_cluster, sqlite_url):
    """r-cran-terra's elev.tif (Luxembourg, with nodata outside the country), cut into overlapping pieces."""
    from rasterio.windows import Window

    src_path = terra_rasters["elev.tif"]
    pieces = []
    with rasterio.open(src_path) as src:
        whole, profile = src.read(), src.profile
        h, w = src.height, src.width
        for i, (r0, r1) in enumerate(((0, h // 2 + 5), (h // 2 - 5, h))):
            for j, (c0, c1) in enumerate(((0, w // 3 + 4), (w // 3 - 4, w))):
                win = Window(c0, r0, c1 - c0, r1 - r0)
                path = tmp_path / f"elev_{i}{j}.tif"
                with rasterio.open(path, "w", **{**profile, "width": win.width, "height": win.height,
                                                 "transform": src.window_transform(win)}) as dst:
                    dst.write(src.read(window=win))
                pieces.append(str(path))
    res = geoproc.run("mosaic", inputs=pieces, overlap="last", output=str(tmp_path / "elev.tif"),
                      region_bytes="64KiB", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    with rasterio.open(tmp_path / "elev.tif") as ds, rasterio.open(src_path) as src:
        assert (ds.width, ds.height) == (w, h) and ds.transform.almost_equals(src.transform)
        assert ds.nodata == src.nodata
        np.testing.assert_array_equal(ds.read(), whole)


def test_a_killed_mosaic_resumes_with_only_the_missing_regions(tmp_path, dask_cluster):
    from kit.resume import kill_midway

    data = smooth(4096, 4096)  # 64 regions of one 512 block
    pieces = []
    for i in range(4):
        for j in range(4):
            pieces.append(write(tmp_path / f"p{i}{j}.tif", data[:, i * 1024:(i + 1) * 1024, j * 1024:(j + 1) * 1024].copy(),
                                x0=X0 + j * 1024 * RES, y0=Y0 - i * 1024 * RES))
    out = tmp_path / "m.tif"

    def args(ledger):
        return ("run", "mosaic", "--set", f"inputs={json.dumps(pieces)}", "--set", f"output={out}", "--set",
                "chunks=[128, 128]", "--set", "region_bytes=64KiB", "--cluster", dask_cluster, "--ledger", ledger,
                "--json")

    clean = _cli(*args(f"sqlite:///{tmp_path}/clean.db"))
    assert clean.returncode == 0, clean.stderr
    want = out.read_bytes()
    out.unlink()
    killed = f"sqlite:///{tmp_path}/killed.db"
    job_id, done, total = kill_midway(args(killed), killed)
    assert job_id == json.loads(clean.stdout)["job_id"] and 20 <= done < total == 64
    again = json.loads(_cli(*args(killed)).stdout)
    assert again["executed"] == (total - done) + 1 and out.read_bytes() == want  # byte-identical
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), data)
    assert json.loads(_cli(*args(killed)).stdout)["executed"] == 0
