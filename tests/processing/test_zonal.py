"""The zonal_stats job: exactextract's answers, batched by location, on worker processes."""

from __future__ import annotations

import json
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from exactextract import exact_extract
from kit.drivers import geoproc_cmd
from rasterio.transform import from_origin
from shapely.geometry import Point, Polygon, box

import geoproc

OPS = {"count": "count", "sum": "sum", "mean": "mean", "min": "min", "max": "max", "std": "stdev",
       "median": "median", "majority": "majority"}


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


def reference(raster, zones: gpd.GeoDataFrame, id_col: str, stats: list[str]) -> pd.DataFrame:
    """exactextract run directly (zones brought into the raster's CRS first, as its users must), with
    zones over no data given null statistics (exactextract gives their sum as 0)."""
    with rasterio.open(raster) as src:
        df = exact_extract(src, zones.to_crs(src.crs)[[id_col, "geometry"]], [OPS[s] for s in stats],
                           include_cols=[id_col], output="pandas")
    df = df.rename(columns={OPS[s]: s for s in stats})
    if "sum" in stats:
        df.loc[df["count"] == 0, "sum"] = np.nan
    return df


@pytest.fixture
def dem(tmp_path):
    """A float32 DEM (UTM 33N, 10 m), nodata in its north-west corner."""
    yy, xx = np.mgrid[0:800, 0:1000].astype("float32")
    z = (500 + 200 * np.sin(xx / 70) * np.cos(yy / 90) + 0.1 * xx).astype("float32")
    z[:200, :250] = -9999.0
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=1000, height=800, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(500000, 5100000, 10, 10), nodata=-9999.0,
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(z[None])
    return path


def zones_in_wgs84(n_random: int = 40) -> gpd.GeoDataFrame:
    """Circles and boxes drawn in UTM, handed over in EPSG:4326: inside, partly outside, over nodata only,
    wholly outside the raster."""
    rng = np.random.default_rng(3)
    geoms, names = [], []
    for i in range(n_random):
        geoms.append(Point(500000 + rng.uniform(0, 10000), 5092000 - rng.uniform(0, 8000)).buffer(rng.uniform(15, 600)))
        names.append(f"c{i:03d}")
    geoms += [box(509500, 5095000, 511000, 5097000), box(500300, 5098500, 501500, 5099500),
              box(520000, 5095000, 521000, 5096000)]
    names += ["partly_outside", "nodata_only", "outside"]
    return gpd.GeoDataFrame({"name": names}, geometry=geoms, crs="EPSG:32633").to_crs("EPSG:4326")


def test_exact_statistics_equal_exactextract(dem, tmp_path, dask_cluster, sqlite_url):
    zones = zones_in_wgs84()
    zones.to_file(tmp_path / "zones.gpkg", engine="pyogrio")
    stats = ["count", "sum", "mean", "min", "max", "std", "median", "majority"]
    out = tmp_path / "stats.parquet"
    args = ("run", "zonal_stats", "--set", f"input={dem}", "--set", f"zones={tmp_path / 'zones.gpkg'}", "--set",
            "zone_id=name", "--set", f"stats={json.dumps(stats)}", "--set", "batch=7", "--set", f"output={out}",
            "--cluster", dask_cluster, "--ledger", sqlite_url, "--json")
    p = _cli(*args)
    assert p.returncode == 0, p.stdout[-3000:]
    res = json.loads(p.stdout)
    assert res["result"]["zones"] == 43 and res["result"]["batches"] == 7
    got = pd.read_parquet(out)
    assert list(got.columns) == ["name", *stats] and list(got["name"]) == list(zones["name"])  # the layer's order
    want = reference(dem, zones, "name", stats)
    pd.testing.assert_frame_equal(got.set_index("name"), want.set_index("name")[stats], check_dtype=False,
                                  rtol=1e-9)
    row = got.set_index("name")
    assert row.loc["nodata_only", "count"] == 0 and row.loc["nodata_only", ["sum", "mean"]].isna().all()
    assert row.loc["outside", "count"] == 0 and row.loc["outside", "max"] != row.loc["outside", "max"]
    assert 0 < row.loc["partly_outside", "count"] < 150 * 200
    again = json.loads(_cli(*args).stdout)
    assert again["job_id"] == res["job_id"] and again["executed"] == 0


def test_real_cantons_over_real_elevation(terra_rasters, terra_package, tmp_path, dask_cluster, sqlite_url):
    """r-cran-terra's lux.shp cantons over its elev.tif, files nobody here wrote: exactextract's answers."""
    shp = next(terra_package.root.rglob("terra/ex/lux.shp"))
    elev = terra_rasters["elev.tif"]
    stats = ["count", "mean", "min", "max", "median"]
    out = tmp_path / "cantons.csv"
    res = geoproc.run("zonal_stats", input=str(elev), zones=str(shp), zone_id="NAME_2", stats=stats, batch=5,
                      output=str(out), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    got = pd.read_csv(out).set_index("NAME_2")
    want = reference(elev, gpd.read_file(shp), "NAME_2", stats).set_index("NAME_2")
    assert len(got) == 12
    pd.testing.assert_frame_equal(got[stats], want[stats], check_dtype=False, rtol=1e-9)


def test_geoparquet_with_the_layers_geometry(dem, tmp_path, dask_cluster, sqlite_url):
    zones = zones_in_wgs84(5)
    zones.to_file(tmp_path / "zones.geojson", engine="pyogrio")
    res = geoproc.run("zonal_stats", input=str(dem), zones=str(tmp_path / "zones.geojson"), geometry=True,
                      output=str(tmp_path / "z.parquet"), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    got = gpd.read_parquet(tmp_path / "z.parquet")
    assert got.crs.to_epsg() == 4326 and list(got.columns) == ["zone", "count", "mean", "geometry"]
    assert got.geometry.geom_equals_exact(zones.geometry, tolerance=1e-9).all()


def test_bad_zones_are_refused_with_a_code(dem, tmp_path, sqlite_url):
    (tmp_path / "broken.gpkg").write_bytes(b"not a geopackage")
    nocrs = gpd.GeoDataFrame({"k": [1]}, geometry=[box(500100, 5095000, 501000, 5096000)])
    nocrs.to_file(tmp_path / "nocrs.shp", engine="pyogrio")
    bowtie = Polygon([(500100, 5095000), (501000, 5096000), (501000, 5095000), (500100, 5096000)])
    gpd.GeoDataFrame({"k": [1]}, geometry=[bowtie], crs="EPSG:32633").to_file(tmp_path / "bowtie.gpkg")
    gpd.GeoDataFrame({"k": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(tmp_path / "far.gpkg")
    cases = [("broken.gpkg", [], "ZONES_UNREADABLE"), ("nocrs.shp", [], "ZONES_NO_CRS"),
             ("bowtie.gpkg", ["invalid=report"], "ZONES_INVALID"), ("far.gpkg", [], "ZONES_OUTSIDE"),
             ("bowtie.gpkg", ["zone_id=nope"], "ZONES_INVALID")]
    for name, extra, code in cases:
        out = tmp_path / "x.parquet"
        sets = [x for s in [f"input={dem}", f"zones={tmp_path / name}", f"output={out}", *extra] for x in ("--set", s)]
        p = _cli("run", "zonal_stats", *sets, "--ledger", sqlite_url, "--workers", "1")
        assert p.returncode != 0 and code in p.stdout + p.stderr, (name, p.stdout[-2000:], p.stderr[-2000:])
        assert "Traceback" not in p.stderr and not out.exists()
    # with zones_crs the layer without one is used; a bow-tie is repaired by default
    for name, extra in (("nocrs.shp", ["zones_crs=EPSG:32633"]), ("bowtie.gpkg", [])):
        sets = [x for s in [f"input={dem}", f"zones={tmp_path / name}", f"output={tmp_path / 'ok.parquet'}", *extra]
                for x in ("--set", s)]
        p = _cli("run", "zonal_stats", *sets, "--ledger", sqlite_url, "--workers", "1")
        assert p.returncode == 0, p.stderr
        assert pd.read_parquet(tmp_path / "ok.parquet")["count"].iloc[0] > 0


def rasterized_reference(raster, zones: gpd.GeoDataFrame, id_col: str, all_touched: bool) -> pd.DataFrame:
    """Each zone rasterized over the whole raster (GDAL's rules), its valid cells' statistics in NumPy."""
    from rasterio.features import geometry_mask

    rows = []
    with rasterio.open(raster) as src:
        data = src.read(1, masked=True)
        for zid, geom in zip(zones[id_col], zones.to_crs(src.crs).geometry, strict=True):
            inside = ~geometry_mask([geom], out_shape=data.shape, transform=src.transform, all_touched=all_touched)
            v = data.data[inside & ~np.ma.getmaskarray(data)].astype("float64")
            rows.append({id_col: zid, "count": float(v.size), "mean": v.mean() if v.size else np.nan,
                         "max": v.max() if v.size else np.nan})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("coverage", ["centre", "all_touched"])
def test_centre_and_all_touched_equal_a_rasterize_and_numpy_reference(coverage, dem, tmp_path, dask_cluster,
                                                                      sqlite_url):
    zones = zones_in_wgs84(25)
    zones.to_file(tmp_path / "zones.gpkg", engine="pyogrio")
    res = geoproc.run("zonal_stats", input=str(dem), zones=str(tmp_path / "zones.gpkg"), zone_id="name",
                      stats=["count", "mean", "max"], coverage=coverage, batch=6, output=str(tmp_path / "z.parquet"),
                      cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    got = pd.read_parquet(tmp_path / "z.parquet").set_index("name")
    want = rasterized_reference(dem, zones, "name", all_touched=coverage == "all_touched").set_index("name")
    pd.testing.assert_frame_equal(got, want[["count", "mean", "max"]], check_dtype=False, rtol=1e-12)
    exact = reference(dem, zones, "name", ["count"]).set_index("name")["count"]
    inner = want["count"] > 50  # centre counts fewer cells than exact coverage, all_touched more
    if coverage == "centre":
        assert (abs(got["count"] - exact)[inner] < exact[inner] * 0.2).all()
    else:
        assert (got["count"][inner] >= exact[inner] - 1e-6).all()


def test_a_regular_grid_partitions_the_raster(dem, tmp_path, dask_cluster, sqlite_url):
    res = geoproc.run("zonal_stats", input=str(dem), grid=1000.0, stats=["count", "sum"], geometry=True,
                      output=str(tmp_path / "grid.parquet"), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    got = gpd.read_parquet(tmp_path / "grid.parquet")
    assert len(got) == 80 and got["cell"].iloc[0] == "r0c0" and got.crs.to_epsg() == 32633
    with rasterio.open(dem) as src:
        data = src.read(1, masked=True)
    assert got["count"].sum() == pytest.approx(data.count())  # the cells cover every valid pixel once
    block = data[300:400, 500:600]  # cell r3c5: rows 300..399, columns 500..599
    assert got.set_index("cell").loc["r3c5", "sum"] == pytest.approx(float(block.astype("float64").sum()), rel=1e-9)
    assert got.set_index("cell").loc["r0c1", "count"] == 0  # in the nodata corner: null statistics
    assert np.isnan(got.set_index("cell").loc["r0c1", "sum"])


def test_h3_cells_cover_the_bounds_and_count_right(dem, tmp_path, dask_cluster, sqlite_url):
    from shapely.ops import unary_union

    res = geoproc.run("zonal_stats", input=str(dem), h3_resolution=8, stats=["count", "mean"], geometry=True,
                      output=str(tmp_path / "h3.parquet"), cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    got = gpd.read_parquet(tmp_path / "h3.parquet")
    with rasterio.open(dem) as src:
        west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    assert unary_union(got.geometry.values).contains(box(west, south, east, north))
    assert got["h3"].str.len().eq(15).all() and got.crs.to_epsg() == 4326
    want = reference(dem, got[["h3", "geometry"]], "h3", ["count"]).set_index("h3")["count"]
    np.testing.assert_allclose(got.set_index("h3")["count"], want.loc[got["h3"]], rtol=1e-9)
    p = _cli("run", "zonal_stats", "--set", f"input={dem}", "--set", "h3_resolution=16", "--set",
             f"output={tmp_path / 'x.parquet'}", "--ledger", sqlite_url)
    assert p.returncode == 2 and "H3_RESOLUTION" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_the_python_call_returns_the_table_and_computes_it_once(dem, tmp_path, monkeypatch, dask_cluster, sqlite_url):
    from geoproc.errors import JobFailed
    from geoproc.ledger import open_ledger

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    zones = zones_in_wgs84(10)
    zones.to_file(tmp_path / "zones.gpkg", engine="pyogrio")
    kwargs = dict(zone_id="name", stats=["mean", "max"], cluster=dask_cluster, ledger=sqlite_url)
    df = geoproc.zonal_stats(str(dem), str(tmp_path / "zones.gpkg"), **kwargs)
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["name", "mean", "max"] and len(df) == 13
    assert list((tmp_path / "data" / "geoproc" / "zonal_stats").glob("*.parquet"))  # named by the request
    again = geoproc.zonal_stats(str(dem), str(tmp_path / "zones.gpkg"), **kwargs)
    pd.testing.assert_frame_equal(again, df)
    led = open_ledger(sqlite_url, read_only=True)
    try:
        jobs = led.list_jobs(limit=10)
        assert len(jobs) == 1 and jobs[0].runs == 1  # the second call found the job finished
    finally:
        led.close()
    geo = geoproc.zonal_stats(str(dem), str(tmp_path / "zones.gpkg"), geometry=True, **kwargs)
    assert isinstance(geo, gpd.GeoDataFrame) and geo.crs.to_epsg() == 4326
    gpd.GeoDataFrame({"k": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(tmp_path / "far.gpkg")
    with pytest.raises(JobFailed, match="ZONES_OUTSIDE|no zone") as failed:
        geoproc.zonal_stats(str(dem), str(tmp_path / "far.gpkg"), cluster=dask_cluster, ledger=sqlite_url)
    assert failed.value.result.status == "failed"


def test_a_killed_zonal_job_resumes_with_only_the_missing_batches(dem, tmp_path, dask_cluster):
    from kit.resume import kill_midway

    rng = np.random.default_rng(11)
    centres = [Point(500000 + x, 5092000 + y) for x, y in rng.uniform([0, 0], [10000, 8000], (3000, 2))]
    gpd.GeoDataFrame({"id": np.arange(3000)}, geometry=[c.buffer(rng.uniform(20, 200)) for c in centres],
                     crs="EPSG:32633").to_file(tmp_path / "many.gpkg", engine="pyogrio")
    out = tmp_path / "many.parquet"

    def args(ledger):
        return ("run", "zonal_stats", "--set", f"input={dem}", "--set", f"zones={tmp_path / 'many.gpkg'}", "--set",
                "zone_id=id", "--set", 'stats=["count", "mean", "median"]', "--set", "batch=12", "--set",
                f"output={out}", "--cluster", dask_cluster, "--ledger", ledger, "--json")

    clean = _cli(*args(f"sqlite:///{tmp_path}/clean.db"))
    assert clean.returncode == 0, clean.stdout[-3000:]
    want = pd.read_parquet(out)
    out.unlink()
    killed = f"sqlite:///{tmp_path}/killed.db"
    job_id, done, total = kill_midway(args(killed), killed)
    assert job_id == json.loads(clean.stdout)["job_id"] and 20 <= done < total == 250
    again = json.loads(_cli(*args(killed)).stdout)
    assert again["executed"] == (total - done) + 1  # the missing batches and the table
    pd.testing.assert_frame_equal(pd.read_parquet(out), want)
    assert json.loads(_cli(*args(killed)).stdout)["executed"] == 0


def test_a_deleted_table_is_made_again_on_resubmission(dem, tmp_path, dask_cluster, sqlite_url):
    zones = zones_in_wgs84()
    zones.to_file(tmp_path / "zones.gpkg", engine="pyogrio")
    out = tmp_path / "stats.parquet"
    params = dict(input=str(dem), zones=str(tmp_path / "zones.gpkg"), zone_id="name", batch=7, output=str(out),
                  cluster=dask_cluster, ledger=sqlite_url)
    assert geoproc.run("zonal_stats", **params).status == "completed"
    want = pd.read_parquet(out)
    out.unlink()
    again = geoproc.run("zonal_stats", **params)
    assert again.status == "completed" and again.executed > 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), want)
    assert geoproc.run("zonal_stats", **params).executed == 0
