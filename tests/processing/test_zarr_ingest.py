"""The zarr_ingest job: NetCDF into Zarr v3 region by region, on worker processes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import xarray as xr
from kit.drivers import geoproc_cmd

import geoproc

CODER = xr.coders.CFDatetimeCoder(use_cftime=True)


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


def synthetic(path, *, times=6, lat=300, lon=500, calendar="standard"):
    """tas (float32) and pr (packed int16) on time x lat x lon, with time bounds off the spatial dims."""
    rng = np.random.default_rng(5)
    t = xr.date_range("2001-01-01", periods=times, freq="MS", calendar=calendar, use_cftime=True)
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), (280 + 10 * rng.standard_normal((times, lat, lon))).astype("float32"),
                 {"units": "K", "standard_name": "air_temperature"}),
         "pr": (("time", "lat", "lon"), rng.uniform(0, 20, (times, lat, lon)), {"units": "mm/day"}),
         "time_bnds": (("time", "nv"), np.stack([np.arange(times), np.arange(times) + 1], axis=1).astype("float64"))},
        coords={"time": t, "lat": np.linspace(-59.75, 59.75, lat), "lon": np.linspace(0.25, 359.75, lon)},
        attrs={"title": "synthetic", "Conventions": "CF-1.8"})
    ds["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    ds["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    encoding = {"pr": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -32767},
                "tas": {"zlib": True, "chunksizes": (1, min(100, lat), min(100, lon))}}
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return path


def test_a_netcdf_file_reads_back_equal_with_the_chunks_asked(tmp_path, dask_cluster, sqlite_url):
    nc = synthetic(tmp_path / "clim.nc")
    store = tmp_path / "clim.zarr"
    args = ("run", "zarr_ingest", "--set", f"input={nc}", "--set", f"output={store}", "--set",
            'chunks={"time": 1, "lat": 128, "lon": 128}', "--set", "region_bytes=256KiB",
            "--cluster", dask_cluster, "--ledger", sqlite_url, "--json")
    p = _cli(*args)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    res = json.loads(p.stdout)
    assert res["result"]["regions"] > 6
    want = xr.open_dataset(nc, decode_times=CODER)
    back = xr.open_zarr(store, decode_times=CODER)
    assert set(back.data_vars) == {"tas", "pr", "time_bnds"}
    for v in ("tas", "pr", "time_bnds"):
        xr.testing.assert_identical(back[v].load(), want[v].load())
    assert back["tas"].encoding["chunks"] == (1, 128, 128) and back["pr"].encoding["chunks"] == (1, 128, 128)
    assert back["pr"].encoding["dtype"] == np.dtype("int16")  # kept packed as declared
    assert back.attrs["title"] == "synthetic"
    again = json.loads(_cli(*args).stdout)
    assert again["job_id"] == res["job_id"] and again["executed"] == 0


def test_a_real_climatology_with_a_year_zero_origin(tmp_path, dask_cluster, sqlite_url):
    """ferret's COADS climatology (12 months counted from year 0, longitudes 21..379), nobody here wrote it."""
    from kit import debian

    try:
        pkg = debian.unpacked("ferret-datasets")
    except debian.PackageUnavailable as exc:
        from kit import services

        services.missing(f"ferret-datasets ({exc})")
    nc = next(pkg.root.rglob("coads_climatology.cdf"))
    res = geoproc.run("zarr_ingest", input=str(nc), output=str(tmp_path / "coads.zarr"), cluster=dask_cluster,
                      ledger=sqlite_url)
    assert res.status == "completed", res.error
    from geoproc.cube.sources import open_source

    want = open_source(str(nc))
    back = xr.open_zarr(tmp_path / "coads.zarr", decode_times=CODER)
    assert back.sizes["TIME"] == 12 and float(back["COADSX"].max()) > 360
    assert str(back["TIME"].values[0])[:4] == "0000"  # year 0 kept, decoded with cftime
    for v in want.data_vars:
        np.testing.assert_array_equal(back[v].values, want[v].values)


def test_bad_sources_are_refused_before_anything_runs(tmp_path, sqlite_url):
    xr.Dataset({"v": (("station",), np.arange(5.0))}).to_netcdf(tmp_path / "table.nc")
    synthetic(tmp_path / "ok.nc", times=2, lat=20, lon=30)
    xr.Dataset({"v": (("time", "lat", "lon"), np.zeros((0, 3, 4)))},
               coords={"time": pd.to_datetime([]), "lat": [1.0, 2, 3], "lon": [1.0, 2, 3, 4]}).to_netcdf(
        tmp_path / "empty.nc")
    (tmp_path / "junk.nc").write_bytes(b"CDF nonsense")
    for name, extra, code in (("table.nc", [], "CUBE_NO_SPACE"), ("ok.nc", ['variables=["nope"]'], "CUBE_VARIABLES"),
                              ("empty.nc", [], "CUBE_EMPTY"), ("junk.nc", [], "CUBE_UNREADABLE")):
        out = tmp_path / "x.zarr"
        sets = [x for s in [f"input={tmp_path / name}", f"output={out}", *extra] for x in ("--set", s)]
        p = _cli("run", "zarr_ingest", *sets, "--ledger", sqlite_url, "--workers", "1")
        assert p.returncode == 2 and code in p.stderr and "Traceback" not in p.stderr, (name, p.stderr[-2000:])
        assert not out.exists()


def test_longitudes_crs_calendars_and_packing(tmp_path, dask_cluster, sqlite_url):
    nc = synthetic(tmp_path / "c360.nc", times=4, lat=60, lon=120, calendar="360_day")
    store = tmp_path / "c360.zarr"
    res = geoproc.run("zarr_ingest", input=str(nc), output=str(store), lon_180=True, crs="EPSG:4326",
                      decode_packed=True, chunks={"time": 2, "lat": 32, "lon": 32}, cluster=dask_cluster,
                      ledger=sqlite_url)
    assert res.status == "completed", res.error
    want = xr.open_dataset(nc, decode_times=CODER)
    want = want.assign_coords(lon=((want.lon + 180) % 360) - 180).sortby("lon")
    back = xr.open_zarr(store, decode_times=CODER, decode_coords="all")
    assert float(back.lon.min()) == -179.75 + 0 * 1 or float(back.lon.min()) < -170
    assert bool((back.lon.diff("lon") > 0).all())  # sorted
    np.testing.assert_array_equal(back["tas"].values, want["tas"].values)
    np.testing.assert_array_equal(back["pr"].values, want["pr"].values)
    assert back["pr"].encoding["dtype"] == np.dtype("float64")  # stored decoded
    assert type(back["time"].values[0]).__name__ == "Datetime360Day"
    assert back.rio.crs.to_epsg() == 4326
    assert back["tas"].encoding["chunks"] == (2, 32, 32)


def test_a_real_netcdf4_file_with_a_packed_variable(tmp_path, dask_cluster, sqlite_url):
    """r-cran-ncmeta's MODIS chlorophyll L3 map (netCDF-4 / HDF5, 2160 x 4320, packed), nobody here wrote it."""
    from kit import debian

    try:
        pkg = debian.unpacked("r-cran-ncmeta")
    except debian.PackageUnavailable as exc:
        from kit import services

        services.missing(f"r-cran-ncmeta ({exc})")
    nc = next(pkg.root.rglob("S2008001.L3m_DAY_CHL_chlor_a_9km.nc"))
    res = geoproc.run("zarr_ingest", input=str(nc), output=str(tmp_path / "chl.zarr"), variables=["chlor_a"],
                      crs="EPSG:4326", cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    want = xr.open_dataset(nc, engine="netcdf4")["chlor_a"]
    back = xr.open_zarr(tmp_path / "chl.zarr", decode_coords="all")
    np.testing.assert_array_equal(back["chlor_a"].values, want.values)
    assert back["chlor_a"].encoding["chunks"] == (256, 256) and back.rio.crs.to_epsg() == 4326
    assert back["chlor_a"].attrs.get("units") == want.attrs.get("units")


def test_the_stac_item_describes_the_cube(tmp_path, dask_cluster, sqlite_url):
    from stac_pydantic import Item

    nc = synthetic(tmp_path / "sst.nc", times=3, lat=40, lon=80)
    res = geoproc.run("zarr_ingest", input=str(nc), output=str(tmp_path / "sst.zarr"), crs="EPSG:4326",
                      cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed", res.error
    item = json.loads((tmp_path / "sst.zarr.json").read_text())
    Item.model_validate(item)
    props = item["properties"]
    assert props["start_datetime"].startswith("2001-01-01") and props["end_datetime"].startswith("2001-03-01")
    assert props["cube:dimensions"]["time"]["type"] == "temporal"
    assert props["cube:dimensions"]["lon"]["reference_system"] == "EPSG:4326"
    assert props["cube:variables"]["tas"]["dimensions"] == ["time", "lat", "lon"]
    assert props["cube:variables"]["tas"]["chunks"] == [1, 40, 80] and props["cube:variables"]["tas"]["unit"] == "K"
    assert item["assets"]["data"]["href"] == str(tmp_path / "sst.zarr") and item["bbox"][0] == -180.0


def test_files_along_time_and_the_dry_run(tmp_path, dask_cluster, sqlite_url):
    (tmp_path / "monthly").mkdir()
    parts = []
    for i in range(3):
        t = xr.date_range(f"200{i}-01-01", periods=2, freq="MS", use_cftime=True)
        ds = xr.Dataset({"tas": (("time", "lat", "lon"), np.full((2, 30, 40), float(i), "float32"))},
                        coords={"time": t, "lat": np.arange(30.0), "lon": np.arange(40.0)})
        ds.to_netcdf(tmp_path / "monthly" / f"tas_{i}.nc")
        parts.append(ds)
    store = tmp_path / "all.zarr"
    plan = geoproc.run("zarr_ingest", input=str(tmp_path / "monthly"), output=str(store), dry_run=True,
                       cluster=dask_cluster, ledger=sqlite_url)
    assert plan.status == "completed" and plan.executed == 0 and not store.exists()
    assert plan.result["sizes"]["time"] == 6 and plan.result["inputs"] == 3 and plan.result["regions"] >= 1
    assert plan.result["bytes"] == 6 * 30 * 40 * 4
    res = geoproc.run("zarr_ingest", input=str(tmp_path / "monthly"), output=str(store), cluster=dask_cluster,
                      ledger=sqlite_url)
    assert res.status == "completed", res.error
    back = xr.open_zarr(store, decode_times=CODER)
    xr.testing.assert_equal(back["tas"].load(), xr.concat(parts, dim="time")["tas"])
    other = xr.Dataset({"tas": (("time", "lat", "lon"), np.zeros((1, 30, 40), "float32"))},
                       coords={"time": xr.date_range("2010-01-01", periods=1, use_cftime=True),
                               "lat": np.arange(30.0) + 0.5, "lon": np.arange(40.0)})
    other.to_netcdf(tmp_path / "shifted.nc")
    p = _cli("run", "zarr_ingest", "--set", f"inputs={json.dumps([str(tmp_path / 'monthly' / 'tas_0.nc'), str(tmp_path / 'shifted.nc')])}",
             "--set", f"output={tmp_path / 'x.zarr'}", "--ledger", sqlite_url, "--workers", "1")
    assert p.returncode == 2 and "CUBE_GRIDS_DIFFER" in p.stderr and "shifted.nc" in p.stderr, p.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_a_killed_ingest_resumes_with_only_the_missing_regions(tmp_path, dask_cluster):
    from kit.resume import kill_midway

    nc = synthetic(tmp_path / "big.nc", times=12, lat=128, lon=256)
    store = tmp_path / "big.zarr"

    def args(ledger):
        return ("run", "zarr_ingest", "--set", f"input={nc}", "--set", f"output={store}", "--set",
                'chunks={"time": 1, "lat": 32, "lon": 64}', "--set", "region_bytes=64KiB", "--cluster", dask_cluster,
                "--ledger", ledger, "--json")

    clean = _cli(*args(f"sqlite:///{tmp_path}/clean.db"))
    assert clean.returncode == 0, clean.stdout[-2000:]
    want = xr.open_zarr(store, decode_times=CODER).load()
    import shutil

    shutil.rmtree(store)
    killed = f"sqlite:///{tmp_path}/killed.db"
    job_id, done, total = kill_midway(args(killed), killed)
    assert job_id == json.loads(clean.stdout)["job_id"] and 20 <= done < total == 96
    again = json.loads(_cli(*args(killed)).stdout)
    assert again["executed"] == (total - done) + 1  # the missing regions and the finalize
    xr.testing.assert_identical(xr.open_zarr(store, decode_times=CODER).load(), want)
    assert json.loads(_cli(*args(killed)).stdout)["executed"] == 0


def test_a_deleted_store_is_made_again_on_resubmission(tmp_path, dask_cluster, sqlite_url):
    import shutil

    nc = synthetic(tmp_path / "clim.nc")
    store = tmp_path / "clim.zarr"
    params = dict(input=str(nc), output=str(store), region_bytes="256KiB", cluster=dask_cluster, ledger=sqlite_url)
    assert geoproc.run("zarr_ingest", **params).status == "completed"
    want = xr.open_zarr(store)["tas"].values
    shutil.rmtree(store)
    again = geoproc.run("zarr_ingest", **params)
    assert again.status == "completed" and again.executed > 0
    np.testing.assert_array_equal(xr.open_zarr(store)["tas"].values, want)
    assert geoproc.run("zarr_ingest", **params).executed == 0
