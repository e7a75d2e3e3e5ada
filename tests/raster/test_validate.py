"""Validation rules and type detection on synthetic GeoTIFFs (each rule has a raster that trips it)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from kit.runner import run_inline
from rasterio.transform import Affine

from geoproc.errors import (
    CorruptRaster,
    CrsMismatch,
    CrsMissing,
    EmptyRaster,
    SourceNotFound,
    TierMismatch,
    UnsupportedRaster,
)
from geoproc.raster.io import open_raster
from geoproc.raster.profiles import resolve_tier
from geoproc.raster.validate import validate_raster


def run_validate(path, **kw):
    with open_raster(str(path), {}) as src:
        return validate_raster(src, **kw)


def codes(report):
    return {f["code"]: f["severity"] for f in report["findings"]}


def handler(path, size=None, **params):
    """The cog job's validate task on ``path``, with the task params its planner makes from ``params``.

    Only the listing (the list stage's result) is given; ``size`` is the size it reports.
    """
    listing = {"files": [{"url": str(path), "rel": "x.tif", "size": size, "etag": None}], "skipped": {},
               "collection": None}
    run = run_inline("cog", {"input": str(path), "output": "/tmp/never/x.tif", **params},
                     given={"list": [listing]}, until="validate")
    return run.one("validate")


def test_clean_dem_passes(raster_factory):
    r = run_validate(raster_factory("dem.tif", dtype="float32", nodata=-9999))
    assert r["ok"] and r["raster_type"] in ("dem", "continuous") and r["crs"] == "EPSG:32633"
    assert not [f for f in r["findings"] if f["severity"] != "info"]


def test_crs_rules(raster_factory):
    bare = raster_factory("bare.tif", crs=None)
    with pytest.raises(CrsMissing) as err:
        handler(bare)
    assert err.value.code == "CRS_MISSING" and "input_crs" in err.value.remediation
    v = handler(bare, input_crs="EPSG:32633")
    assert v["crs"] == "EPSG:32633" and v["crs_source"] == "input_crs"
    with pytest.raises(CrsMismatch):
        handler(raster_factory("utm.tif"), input_crs="EPSG:32634")
    assert handler(raster_factory("utm2.tif"), input_crs="EPSG:32633")["crs_source"] == "file"


def test_rotated_transform(tmp_path, raster_factory):
    path = raster_factory("rot.tif", size=(64, 64))
    with rasterio.open(path, "r+") as ds:
        ds.transform = Affine(10, 2, 500000, 1, -10, 5000000)
    with pytest.raises(UnsupportedRaster) as err:
        handler(path, target_crs="keep")
    assert err.value.code == "TRANSFORM_ROTATED"
    v = handler(path)  # warped to EPSG:4326: fine, with a warning
    assert any(w.startswith("TRANSFORM_ROTATED") for w in v["warnings"])


def test_64bit_policy(raster_factory):
    path = raster_factory("f64.tif", dtype="float64", size=(64, 64))
    assert any(w.startswith("DTYPE_64BIT") for w in handler(path)["warnings"])
    with pytest.raises(UnsupportedRaster) as err:
        handler(path, strict=True)
    assert err.value.code == "DTYPE_64BIT"


def test_all_nodata_fails_and_mostly_nodata_warns(raster_factory):
    empty = raster_factory("empty.tif", nodata=0, data=np.zeros((1, 256, 256), "float32"), size=(256, 256))
    with pytest.raises(EmptyRaster) as err:
        handler(empty)
    assert err.value.code == "RASTER_EMPTY"
    data = np.zeros((1, 256, 256), "float32")
    data[0, :10, :10] = 5
    sparse = raster_factory("sparse.tif", nodata=0, data=data, size=(256, 256))
    assert any(w.startswith("RASTER_MOSTLY_EMPTY") for w in handler(sparse)["warnings"])


def test_tiny_valid_area_missed_by_the_sample_is_not_empty(raster_factory):
    data = np.zeros((1, 1024, 4096), "float32")
    data[0, 1001, 4001] = 3.0  # one pixel the 4x decimated sample cannot see
    path = raster_factory("speck.tif", nodata=0, data=data, size=(4096, 1024),
                          bounds=(500000, 5000000, 540960, 5010240), tiled=True, blockxsize=256, blockysize=256)
    assert any(w.startswith("RASTER_MOSTLY_EMPTY") for w in handler(path)["warnings"])


def test_nodata_conflict_and_extreme_values(raster_factory):
    data = np.linspace(0, 100, 128 * 128, dtype="float32").reshape(1, 128, 128)
    conflict = raster_factory("conflict.tif", nodata=50, data=data, size=(128, 128))
    assert "RASTER_NODATA_CONFLICT" in codes(run_validate(conflict))
    with pytest.raises(UnsupportedRaster):
        handler(conflict, strict=True)
    data2 = data.copy()
    data2[0, 0, 0] = -3.4e38
    extreme = raster_factory("extreme.tif", data=data2, size=(128, 128))
    assert codes(run_validate(extreme)).get("RASTER_EXTREME_VALUES") == "warning"


@pytest.mark.parametrize("bands,dtype,expect", [
    (3, "uint8", "rgb"), (5, "uint16", "multispectral"), (1, "int16", "dem"), (1, "float32", "dem"),
])
def test_type_detection(raster_factory, bands, dtype, expect):
    r = run_validate(raster_factory(f"t{bands}{dtype}.tif", bands=bands, dtype=dtype, size=(128, 128)))
    assert r["raster_type"] == expect, r["type_reason"]


def test_categorical_detection_even_in_float(raster_factory):
    classes = (np.arange(128 * 128).reshape(1, 128, 128) // 3000 % 5 + 1)
    for dtype in ("uint8", "float32"):
        r = run_validate(raster_factory(f"cls_{dtype}.tif", data=classes.astype(dtype), size=(128, 128)))
        assert r["raster_type"] == "categorical", (dtype, r["type_reason"])


def test_rgba_detection(raster_factory):
    path = raster_factory("rgba.tif", bands=4, dtype="uint8", size=(64, 64))
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                          rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    assert run_validate(path)["raster_type"] == "rgba"


def test_tier_fit_is_explicit():
    assert resolve_tier("visualization", 3, "uint8", fallback=False).tier == "visualization"
    with pytest.raises(TierMismatch):
        resolve_tier("visualization", 1, "float32", fallback=False)
    fb = resolve_tier("visualization", 1, "float32", fallback=True)
    assert fb.tier == "analysis" and fb.warning.code == "TIER_FALLBACK" and str(fb.warning).startswith("TIER_FALLBACK: ")


def test_unreadable_inputs_fail_with_codes(tmp_path, raster_factory):
    zero = tmp_path / "zero.tif"
    zero.write_bytes(b"")
    text = tmp_path / "text.tif"
    text.write_text("this is not a GeoTIFF\n" * 20)
    good = raster_factory("good.tif", size=(512, 512), dtype="uint16")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(CorruptRaster, match="empty"):
        handler(zero, size=0)
    with pytest.raises(CorruptRaster, match="not a raster"):
        handler(text)
    with pytest.raises(CorruptRaster) as err:
        handler(truncated)
    assert err.value.code == "CORRUPT_RASTER"
    with pytest.raises(SourceNotFound):
        handler(tmp_path / "missing.tif")


def test_one_header_reader_serves_collections_stac_and_inventories(raster_factory, tmp_path):
    from geoproc.inventory.headers import read_header as inventory_row
    from geoproc.raster.collection import header as collection_header
    from geoproc.raster.header import read_header
    from geoproc.stac import raster_record

    path = raster_factory("h.tif", size=(300, 200), dtype="uint16", nodata=0)
    h = read_header(str(path))
    assert (h.driver, h.width, h.height, h.count, h.dtype, h.nodata) == ("GTiff", 300, 200, 1, "uint16", 0.0)
    assert h.crs and h.crs.startswith("EPSG:") and h.resolution[0] > 0 and h.resolution[1] > 0
    # each view is built from the same facts
    assert collection_header(str(path), None, None, None) == {
        "count": 1, "dtype": "uint16", "crs": h.crs, "resolution": list(h.resolution)}
    row = inventory_row(str(path), {})
    assert (row["crs"], row["bands"], row["dtype"], row["nodata"], row["header_error"]) == (h.crs, 1, "uint16", 0.0, None)
    rec = raster_record(str(path), footprint=False)
    assert (rec["crs"], rec["shape"], rec["is_cog"]) == (h.crs, [200, 300], h.looks_cog)
    with pytest.raises(CorruptRaster, match="empty"):
        read_header(str(tmp_path / "zero.tif"), size=0)
