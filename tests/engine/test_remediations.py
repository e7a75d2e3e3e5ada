"""Every remediation fixes its error: trigger the code with a real run, do what the remediation says, run again.

The ``cog`` job runs on the shared cluster of worker processes; the ``write`` cases run ``geoproc.open``
and ``geoproc.write``. The last test keeps the catalogue honest: each code in ``geoproc codes`` is
triggered by some test (here, or in the fault, raster, STAC and engine suites), or says why it cannot be.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from kit.rasters import write_geotiff

import geoproc
from geoproc import errors
from geoproc.ledger import open_ledger

TESTS = Path(__file__).resolve().parents[1]


def _cog(tmp_path, dask_cluster, src, out, **params):
    return geoproc.run("cog", input=str(src), output=str(out), cluster=dask_cluster,
                       ledger=f"sqlite:///{tmp_path}/ledger.db", **params)


def _codes(tmp_path, res):
    led = open_ledger(f"sqlite:///{tmp_path}/ledger.db", read_only=True)
    try:
        return {t["error_code"] for t in led.list_tasks(res.job_id, status="failed", limit=None)}
    finally:
        led.close()


def _raster(path, **kw):
    return write_geotiff(path, size=(64, 64), **kw)


# each case makes the problem and returns (the params of the failing run, a function that applies the
# remediation and returns the params of the run that follows it)
def _output_exists(d):
    _raster(d / "in" / "a.tif")
    _raster(d / "out" / "a.tif", dtype="uint8")  # somebody else's file where the COG would go
    return {}, lambda: {"overwrite": True}


def _output_collision(d):
    _raster(d / "in" / "a.tif")
    _raster(d / "in" / "a.tiff", dtype="uint8")
    def rename():
        (d / "in" / "a.tiff").rename(d / "in" / "a2.tiff")
        return {}

    return {}, rename


def _crs_missing(d):
    _raster(d / "in" / "a.tif", crs=None)
    return {}, lambda: {"input_crs": "EPSG:32633"}


def _crs_mismatch(d):
    _raster(d / "in" / "a.tif")
    return {"input_crs": "EPSG:4326"}, lambda: {}  # "drop `input_crs`"


def _tier_mismatch(d):
    _raster(d / "in" / "a.tif", dtype="float32")
    return {"tier": "visualization", "tier_fallback": False}, lambda: {"tier": "analysis", "tier_fallback": False}


def _corrupt_raster(d):
    (d / "in").mkdir(parents=True)
    (d / "in" / "a.tif").write_bytes(b"II*\x00 truncated upload")

    def reupload():
        (d / "in" / "a.tif").unlink()
        _raster(d / "in" / "a.tif")
        return {}

    return {}, reupload


def _nan_without_nodata(d):
    data = np.ones((1, 64, 64), "float32")
    data[0, :8, :8] = np.nan
    _raster(d / "in" / "a.tif", data=data)

    def declare():
        (d / "in" / "a.tif").unlink()
        _raster(d / "in" / "a.tif", data=data, nodata=np.nan)  # "declare nodata=nan"
        return {}

    return {}, declare


def _bounds_invalid(d):
    _raster(d / "in" / "a.tif", crs="EPSG:4326")  # UTM metres labelled as degrees

    def fix_crs():
        (d / "in" / "a.tif").unlink()
        _raster(d / "in" / "a.tif", crs="EPSG:32633")
        return {}

    return {}, fix_crs


def _geotransform_missing(d):
    (d / "in").mkdir(parents=True)
    with rasterio.open(d / "in" / "a.tif", "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs="EPSG:32633") as dst:  # a CRS, but no geotransform
        dst.write(np.ones((1, 64, 64), "uint8"))

    def add_geotransform():
        (d / "in" / "a.tif").unlink()
        _raster(d / "in" / "a.tif")
        return {}

    return {}, add_geotransform


def _source_not_found(d):
    def create():
        _raster(d / "in" / "a.tif")
        return {}

    return {}, create


COG_CASES = {
    "OUTPUT_EXISTS": _output_exists,
    "OUTPUT_COLLISION": _output_collision,
    "CRS_MISSING": _crs_missing,
    "CRS_MISMATCH": _crs_mismatch,
    "TIER_MISMATCH": _tier_mismatch,
    "CORRUPT_RASTER": _corrupt_raster,
    "SOURCE_NOT_FOUND": _source_not_found,
    "NAN_WITHOUT_NODATA": _nan_without_nodata,
    "BOUNDS_INVALID": _bounds_invalid,
    "GEOTRANSFORM_MISSING": _geotransform_missing,
}


def _met(tmp_path, res) -> set[str]:
    """The codes a run met: its failed tasks' codes and the codes of its warnings."""
    return _codes(tmp_path, res) | set(re.findall(r"\b([A-Z][A-Z_]{4,}): ", json.dumps(res.result or {})))


@pytest.mark.parametrize("code", sorted(COG_CASES))
def test_the_remediation_of_a_cog_error_fixes_it(code, tmp_path, dask_cluster):
    failing, fix = COG_CASES[code](tmp_path)
    res = _cog(tmp_path, dask_cluster, tmp_path / "in", tmp_path / "out", **failing)
    assert code in _met(tmp_path, res), (res.status, _met(tmp_path, res))
    again = _cog(tmp_path, dask_cluster, tmp_path / "in", tmp_path / "out", **fix())
    if again.status != "completed":  # a failed task of a finished job re-runs by `geoproc retry`
        again = geoproc.retry(again.job_id, ledger=f"sqlite:///{tmp_path}/ledger.db", cluster=dask_cluster)
    assert again.status == "completed", (code, again.error, _codes(tmp_path, again))
    assert again.result["failed"] == 0 and again.result["done"] >= 1
    assert code not in _met(tmp_path, again)


def test_unsafe_path_is_fixed_by_another_output(tmp_path, dask_cluster):
    src = _raster(tmp_path / "in" / "a.tif")
    res = _cog(tmp_path, dask_cluster, src, src)
    assert "UNSAFE_PATH" in _codes(tmp_path, res)
    assert _cog(tmp_path, dask_cluster, src, tmp_path / "out" / "a.tif").status == "completed"


def _scene(path):
    return write_geotiff(path, size=(256, 256), bands=2, dtype="uint16", nodata=0)


def test_the_remediations_of_write_errors_fix_them(tmp_path, dask_cluster, sqlite_url):
    a = geoproc.open(str(_scene(tmp_path / "a.tif")))
    run = {"cluster": dask_cluster, "ledger": sqlite_url}

    # NO_OVERLAP -> check bounds= (they are in the output CRS)
    with pytest.raises(errors.InvalidInput) as e:
        geoproc.open(str(tmp_path / "a.tif"), bounds=(0, 0, 100, 100))
    assert e.value.code == errors.NO_OVERLAP
    assert geoproc.open(str(tmp_path / "a.tif"), bounds=(500000, 5000000, 505000, 5005000)).sizes["x"] > 0

    # NOT_LAZY -> chunk it
    big = xr.DataArray(np.zeros((2000, 2000)), dims=("y", "x"),
                       coords={"y": 5e6 - 10 * np.arange(2000.0), "x": 5e5 + 10 * np.arange(2000.0)})
    big = big.rio.write_crs("EPSG:32633")
    with pytest.raises(errors.InvalidInput) as e:
        geoproc.write(big, str(tmp_path / "big.zarr"), memory_limit="1MB", **run)
    assert e.value.code == errors.NOT_LAZY
    assert geoproc.write(big.chunk({"y": 1000, "x": 1000}), str(tmp_path / "big.zarr"), memory_limit="1MB",
                         **run).status == "completed"

    # BAD_DIMS -> select or reduce the other dimensions
    cube = geoproc.open([str(tmp_path / "a.tif"), str(_scene(tmp_path / "b.tif"))])
    with pytest.raises(errors.InvalidInput) as e:
        geoproc.write(cube, str(tmp_path / "cube.zarr"), **run)
    assert e.value.code == errors.BAD_DIMS
    assert geoproc.write(cube.max("time"), str(tmp_path / "cube.zarr"), **run).status == "completed"

    # BANDS_DIFFER -> choose the bands they share
    one_band = write_geotiff(tmp_path / "c.tif", size=(256, 256), bands=1, dtype="uint16", nodata=0)
    with pytest.raises(errors.InvalidInput) as e:
        geoproc.open([str(tmp_path / "a.tif"), str(one_band)])
    assert e.value.code == errors.BANDS_DIFFER
    assert geoproc.open([str(tmp_path / "a.tif"), str(one_band)], bands=[1]).sizes["time"] == 2

    # ZARR_INCOMPATIBLE -> write to another store, or overwrite=true
    res = geoproc.write(a.isel(band=0) * 2, str(tmp_path / "cube.zarr"), **run)
    assert res.status == "failed"
    led = open_ledger(sqlite_url, read_only=True)
    try:
        assert {t["error_code"] for t in led.list_tasks(res.job_id, status="failed")} == {errors.ZARR_INCOMPATIBLE}
    finally:
        led.close()
    assert geoproc.write(a.isel(band=0) * 2, str(tmp_path / "cube.zarr"), overwrite=True, **run).status == "completed"

    # NOT_A_DATAARRAY -> pass one variable of a Dataset
    with pytest.raises(errors.InvalidInput) as e:
        geoproc.write(a.to_dataset(name="v"), str(tmp_path / "ds.zarr"), **run)
    assert e.value.code == errors.NOT_A_DATAARRAY
    assert geoproc.write(a.to_dataset(name="v")["v"], str(tmp_path / "ds.zarr"), **run).status == "completed"

    # NOTHING_TO_OPEN -> check the path
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.InvalidInput) as e:
        geoproc.open(str(tmp_path / "empty"))
    assert e.value.code == errors.NOTHING_TO_OPEN
    shutil.copy(tmp_path / "a.tif", tmp_path / "empty" / "a.tif")
    assert geoproc.open(str(tmp_path / "empty")).sizes["time"] == 1


#: codes no test triggers on purpose, and why
NOT_TRIGGERED = {
    "BATCH_ERROR": "a Dask failure outside any handler (serialization, scheduler); not reproducible on purpose",
    "NO_VALIDATION": "a conversion task without its validation result: an engine invariant, not a user error",
    "NO_PREDECESSOR_RESULT": "a lineage task without its parent's result: an engine invariant",
    "WRITE_NEEDS_ARRAY": "a write task run without its array: only `geoproc retry` of a write job gets there",
    "TASK_FAILED": "the generic class code of TaskError, which handlers never raise bare",
    "INVALID_INPUT": "the generic class code of InvalidInput, raised with a specific code everywhere",
    "TRANSIENT": "the generic class code of TransientError (tests raise it through hello_world's failure_rate)",
    "DTYPE_UNSUPPORTED": "complex rasters; GDAL's complex types are refused by the validation rule table",
    "HTTP_{status}": "a template: the fault tests meet HTTP_* codes through storage outages",
    "MIXED_DTYPES": "a GeoTIFF cannot hold bands of different types; only a hand-written VRT can",
    "NODATA_OUT_OF_RANGE": "GDAL refuses to write such a file; only an external producer makes one",
    "BOUNDS_SUSPICIOUS": "longitudes past 360 degrees; GDAL's own checks refuse most such files first",
    "BAD_DATETIME": "stac_datetime is checked when the job is submitted (InvalidParams) before a task meets it",
    "NO_HREF": "a STAC record without a URL: geoproc's own records always carry one",
    "RASTER_TYPE_OVERRIDDEN": "an info finding in the validate task's result: nothing is wrong, nothing to fix",
}


def test_every_code_is_triggered_by_a_test_or_says_why_not():
    text = "\n".join(p.read_text() for p in TESTS.rglob("test_*.py") if p.name != Path(__file__).name)
    text += "\n".join(f'"{c}"' for c in (*COG_CASES, "UNSAFE_PATH", "NO_OVERLAP", "NOT_LAZY", "BAD_DIMS",
                                          "BANDS_DIFFER", "ZARR_INCOMPATIBLE", "NOTHING_TO_OPEN",
                                          "NOT_A_DATAARRAY"))
    missing = []
    for code in errors.catalogue():
        if code in NOT_TRIGGERED:
            continue
        name = code.split("{")[0]
        if not re.search(rf"\b{re.escape(name)}\b", text) and not re.search(
                rf"errors\.{re.escape(name)}\b|\b{''.join(w.title() for w in name.lower().split('_'))}\b", text):
            missing.append(code)
    assert not missing, f"codes no test triggers (add a test, or a reason to NOT_TRIGGERED): {missing}"
