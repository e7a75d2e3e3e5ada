"""Band statistics counted in pieces and merged equal those counted in one pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoproc.raster.stats import BandStats


@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("int16", -9999), ("uint16", None), ("float32", -1.0),
                                          ("float64", float("nan"))])
def test_pieces_merged_through_json_equal_one_pass(dtype, nodata):
    rng = np.random.default_rng(7)
    data = (rng.normal(120, 40, size=(2, 300, 400)).clip(1, 250)).astype(dtype)
    if nodata is not None:
        data[:, :40] = nodata
        data[1, 200:] = nodata
    if np.dtype(dtype).kind == "f":
        data[0, 100, :7] = np.nan
    whole = BandStats(2, dtype, nodata)
    whole.add(data)
    merged = None
    for r0 in range(0, 300, 70):
        for c0 in range(0, 400, 150):
            part = BandStats(2, dtype, nodata)
            part.add(data[:, r0:r0 + 70, c0:c0 + 150])
            part = BandStats.from_json(json.loads(json.dumps(part.to_json())))
            merged = part if merged is None else (merged.merge(part) or merged)
    want, got = whole.result(300 * 400), merged.result(300 * 400)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, rel=1e-12)
    valid = data[0][(data[0] != nodata) & np.isfinite(data[0])] if nodata is not None else data[0][np.isfinite(data[0])]
    assert want[0]["minimum"] == valid.min() and want[0]["maximum"] == valid.max()
    assert want[0]["mean"] == pytest.approx(float(valid.astype("float64").mean()), rel=1e-9)
    assert want[0]["valid_percent"] == pytest.approx(100 * valid.size / data[0].size, abs=1e-4)


def test_a_band_without_valid_pixels_has_no_figures():
    acc = BandStats(1, "uint8", 0)
    acc.add(np.zeros((1, 10, 10), "uint8"))
    assert acc.result(100) == [{"minimum": None, "maximum": None, "mean": None, "stddev": None, "valid_percent": 0.0}]


def test_merging_other_bands_is_refused():
    with pytest.raises(ValueError, match=r"cannot merge statistics of 2 x uint8 into 1 x uint8"):
        BandStats(1, "uint8").merge(BandStats(2, "uint8"))
