"""gradvet.base.formatting against strings typed by hand from Python's format specification, and
gradvet.base.stats against the standard library's statistics and numpy."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradvet.base import formatting as F
from gradvet.base import stats

NAN, INF = math.nan, math.inf


# -- formatting: every case typed by hand -----------------------------------------------------------

@pytest.mark.parametrize("value,digits,expected", [
    (0.000123456, 4, "0.0001235"),  # .4g keeps fixed notation down to 1e-5
    (0.0000123456, 4, "1.235e-05"),  # ... and goes scientific below
    (123456.0, 4, "1.235e+05"),
    (1234.5, 4, "1234"),  # round half to even on the binary value 1234.5
    (1.0, 4, "1"),
    (-2.5, 2, "-2.5"),
    (0.1, 3, "0.1"),
    (7, 4, "7"),  # a whole number exactly
    (123456, 4, "123456"),
    (np.int64(12), 4, "12"),
    (np.float32(0.1), 4, "0.1"),
    (NAN, 4, "nan"),
    (INF, 4, "inf"),
    (-INF, 3, "-inf"),
    (None, 4, "-"),
])
def test_number(value, digits, expected):
    assert F.number(value, digits) == expected


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
       st.integers(min_value=1, max_value=10))
def test_number_keeps_the_digits_it_promises(value, digits):
    """Read back, the text is within half a unit of its last significant digit of the value."""
    text = F.number(value, digits)
    back = float(text)
    if value == 0:
        assert back == 0
    else:
        exponent = math.floor(math.log10(abs(value)))
        assert abs(back - value) <= 0.5 * 10 ** (exponent - digits + 1) * (1 + 1e-9)
    significant = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    assert len(significant) <= digits


@pytest.mark.parametrize("value,expected", [
    (True, "yes"), (False, "no"), (None, "-"), (0.123456, "0.1235"), (3, "3"), ("relu", "relu"), (NAN, "nan"),
])
def test_cell(value, expected):
    assert F.cell(value) == expected


@pytest.mark.parametrize("value,expected", [
    (2.307e-06, "2.3e-06"),
    (0.8541, "0.85"),
    (0.0005, "5.0e-04"),  # below 1e-3: scientific
    (0.001, "0.001"),
    (150.0, "1.5e+02"),  # .2g: scientific once the exponent reaches the digits
    (9999.0, "1e+04"),
    (12345.0, "1.2e+04"),
    (-0.25, "-0.25"),
    (0.0, "0"),
    (NAN, "nan"),
    (-INF, "-inf"),
    (None, "?"),
])
def test_short_number(value, expected):
    assert F.short_number(value) == expected


def test_short_number_digits():
    assert F.short_number(2.30719e-06, 3) == "2.31e-06"
    assert F.short_number(0.854123, 3) == "0.854"


@pytest.mark.parametrize("value,digits,expected", [
    (0.25, 0, "25%"), (0.1234, 1, "12.3%"), (1.0, 0, "100%"), (0.0, 0, "0%"),
    (NAN, 0, "nan"), (INF, 0, "inf"), (None, 0, "-"),
])
def test_percent(value, digits, expected):
    assert F.percent(value, digits) == expected


@pytest.mark.parametrize("value,digits,expected", [
    (3.14159e-07, 1, "3.1e-07"), (123456.0, 2, "1.23e+05"), (0.0, 1, "0.0e+00"), (INF, 1, "inf"), (None, 1, "-"),
])
def test_scientific(value, digits, expected):
    assert F.scientific(value, digits) == expected


@pytest.mark.parametrize("values,digits,expected", [
    ([0.9, 0.92], 3, "0.91 +- 0.01"),  # sd of (0.9, 0.92) = 0.01414
    ([0.912], 3, "0.912"),
    ([0.912, None], 3, "0.912"),  # a missing value is not counted
    ([], 3, "-"),
    ([None], 3, "-"),
    ([1.0, INF, 3.0], 3, "2 +- 1 (inf in 1/3)"),
    ([NAN, 1.0], 3, "1 (nan in 1/2)"),
    ([NAN, NAN], 3, "nan"),
    ([INF, NAN], 3, "inf"),
    ([120, 100, 140], 3, "120 +- 2e+01"),  # the sd to one significant digit, as .1g writes 20
    ([0.123456, 0.123456], 2, "0.12 +- 0"),
])
def test_mean_sd_text(values, digits, expected):
    assert F.mean_sd_text(values, digits) == expected


@pytest.mark.parametrize("values,expected", [
    ([3.14e-07], "3.1e-07"),
    ([1e-07, 1e-05], "1.0e-06 [1e-07, 1e-05]"),  # geometric mean 1e-6
    ([0.0, 0.0], "0 (underflow)"),
    ([0.0, 2e-3], "0 .. 2.0e-03"),
    ([NAN], "nan"),
    ([NAN, 4e-4], "4.0e-04"),
])
def test_ratio_spread(values, expected):
    assert F.ratio_spread(values) == expected


# -- stats: against statistics and numpy -----------------------------------------------------------

values_with_gaps = st.lists(st.one_of(st.none(), st.just(NAN), st.just(INF), st.just(-INF),
                                      st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)), max_size=12)


@given(values_with_gaps)
def test_mean_sd_is_that_of_the_finite_values(values):
    good = [v for v in values if v is not None and math.isfinite(v)]
    mean, sd = stats.mean_sd(values)
    if not good:
        assert math.isnan(mean) and math.isnan(sd)
        return
    assert mean == pytest.approx(float(np.mean(good)), rel=1e-9, abs=1e-6)
    expected_sd = float(np.std(good, ddof=1)) if len(good) > 1 else 0.0
    assert sd == pytest.approx(expected_sd, rel=1e-9, abs=1e-6)
    assert stats.finite_mean(values) == mean


def test_mean_sd_matches_the_statistics_module_exactly():
    data = [0.91, 0.93, 0.95, None, NAN]
    assert stats.mean_sd(data) == (statistics.fmean([0.91, 0.93, 0.95]), statistics.stdev([0.91, 0.93, 0.95]))
    assert stats.mean_sd([2.5]) == (2.5, 0.0)


@given(st.lists(st.one_of(st.none(), st.just(NAN), st.just(INF), st.just(0.0), st.just(-1.0),
                          st.floats(min_value=1e-200, max_value=1e200)), max_size=12))
def test_geometric_mean_is_that_of_the_positive_finite_values(values):
    good = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    result = stats.geometric_mean(values)
    if not good:
        assert result is None and stats.geometric_mean(values, default=NAN) is not None
        return
    expected = math.exp(float(np.mean(np.log(good))))
    assert result == pytest.approx(expected, rel=1e-12)


def test_geometric_mean_of_known_numbers():
    assert stats.geometric_mean([1e-6, 1e-2, 1.0]) == pytest.approx(1e-8 ** (1 / 3) * 1.0, rel=1e-12)
    assert stats.geometric_mean([4.0, 1.0, None, NAN, 0.0]) == pytest.approx(2.0)
    assert stats.geometric_mean([], default=NAN) != stats.geometric_mean([], default=NAN)  # nan


@given(st.lists(st.one_of(st.none(), st.just(NAN), st.just(INF), st.floats(min_value=-10, max_value=10)), max_size=12))
def test_product_is_that_of_the_finite_values(values):
    good = [v for v in values if v is not None and math.isfinite(v)]
    result = stats.product(values)
    if not good:
        assert result is None
    else:
        assert result == pytest.approx(float(np.prod(good)), rel=1e-12, abs=1e-300)
