"""Band-math expressions: the allow-list, the names, lazy evaluation equal to NumPy, nodata."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geoproc import errors
from geoproc.raster.expr import Expression

NAMES = {"b1", "b2", "red", "nir"}


@pytest.fixture
def bands():
    rng = np.random.default_rng(3)
    red = rng.integers(0, 4000, (64, 80)).astype("float32")
    nir = rng.integers(0, 4000, (64, 80)).astype("float32")
    red[:5, :5] = np.nan  # nodata read as NaN (masked)
    nir[10, 10] = red[10, 10] = 0  # 0 / 0
    wrap = lambda a: xr.DataArray(a, dims=("y", "x")).chunk({"y": 32, "x": 40})  # noqa: E731
    return {"red": wrap(red), "nir": wrap(nir), "b1": wrap(red), "b2": wrap(nir)}, red, nir


def test_an_expression_is_lazy_and_equals_numpy(bands):
    values, red, nir = bands
    out = Expression.parse("(nir - red) / (nir + red)", NAMES).evaluate(values, nodata=-9999)
    assert out.chunks is not None  # still lazy
    with np.errstate(divide="ignore", invalid="ignore"):
        want = (nir - red) / (nir + red)
    want = np.where(np.isfinite(want), want, -9999)
    np.testing.assert_array_equal(out.values, want)  # nodata in and 0/0 both become the declared nodata
    assert out.values[0, 0] == -9999 and out.values[10, 10] == -9999


def test_semicolons_make_bands_and_functions_work(bands):
    values, red, nir = bands
    out = Expression.parse("where(nir > red, sqrt(nir), -1); clip(log(abs(nir - red) + 1), 0, 5); nanmean(red, nir)",
                           NAMES).evaluate(values)
    assert out.dims == ("band", "y", "x") and list(out.band.values) == ["b1", "b2", "b3"]
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(out.values[0], np.where(nir > red, np.sqrt(nir), -1))
        np.testing.assert_allclose(out.values[1], np.clip(np.log(np.abs(nir - red) + 1), 0, 5))
        np.testing.assert_allclose(out.values[2], np.nanmean(np.stack([red, nir]), axis=0))


@pytest.mark.parametrize(("text", "code"), [
    ("__import__('os').system('x')", errors.EXPR_FORBIDDEN),
    ("red.values", errors.EXPR_FORBIDDEN),
    ("red[0]", errors.EXPR_FORBIDDEN),
    ("(lambda: 1)()", errors.EXPR_FORBIDDEN),
    ("[x for x in red]", errors.EXPR_FORBIDDEN),
    ("red if 1 else nir", errors.EXPR_FORBIDDEN),
    ("open('/etc/passwd')", errors.EXPR_FORBIDDEN),
    ("sqrt(x=red)", errors.EXPR_FORBIDDEN),
    ("'red' + nir", errors.EXPR_FORBIDDEN),
    ("True + red", errors.EXPR_FORBIDDEN),
    ("0 < red < 5", errors.EXPR_FORBIDDEN),
    ("-" * 100 + "red", errors.EXPR_FORBIDDEN),  # nested deeper than the cap
    ("b9 / red", errors.EXPR_UNKNOWN_NAME),
    ("red +", errors.EXPR_SYNTAX),
    ("red;;nir", errors.EXPR_SYNTAX),
    ("", errors.EXPR_SYNTAX),
])
def test_forbidden_and_unknown_are_refused_with_a_code_and_a_remedy(text, code):
    with pytest.raises(errors.InvalidExpression) as e:
        Expression.parse(text, NAMES)
    assert e.value.code == code and e.value.remediation
    assert isinstance(e.value, errors.UserError)  # the CLI exits 2 with one line
    if code == errors.EXPR_UNKNOWN_NAME:
        assert "b1, b2, nir, red" in str(e.value)


def test_deep_nesting_cannot_exhaust_the_parser():
    with pytest.raises(errors.InvalidExpression):
        Expression.parse("-" * 5000 + "red", NAMES)
