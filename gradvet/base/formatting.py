"""Numbers for people: how every table, message and page of gradvet shows a number.

All of it is Python's format specification (`format(value, spec)`): `.4g` is 4 significant
digits, in fixed notation for exponents from -5 up to the number of digits and in scientific
notation outside; NaN and the infinities come out as 'nan', 'inf' and '-inf' (a result to
report, not an error). A missing value (None) is '-', except in prose (`short_number`: '?').
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

from gradvet.base.stats import finite, geometric_mean, mean_sd

MISSING = "-"


def number(value: float | None, digits: int = 4) -> str:
    """`value` to `digits` significant digits (`.{digits}g`); a whole number (an int) exactly;
    NaN 'nan', infinities 'inf' and '-inf'; None '-'."""
    if value is None:
        return MISSING
    if isinstance(value, Integral) and not isinstance(value, bool):
        return str(int(value))
    return format(float(value), f".{digits}g")


def cell(value: Any, digits: int = 4) -> str:
    """A table cell: numbers as `number`, True/False as 'yes'/'no', None as '-', anything else as text."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Real):
        return number(value, digits)
    return str(value)


def short_number(value: float | None, digits: int = 2) -> str:
    """A number in a sentence: `digits` significant digits, `.{digits}g` for 1e-3 <= |v| < 1e4 and
    scientific (`.{digits - 1}e`, so 2.3e-06 and never 0.0000023) outside; 0 as '0'; NaN and the
    infinities as 'nan', 'inf', '-inf'; None as '?' (not known)."""
    if value is None:
        return "?"
    value = float(value)
    if value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e4:
        return format(value, f".{digits}g")
    return format(value, f".{digits - 1}e")


def scientific(value: float | None, digits: int = 1) -> str:
    """`value` in scientific notation with `digits` digits after the point (`.{digits}e`): '3.1e-07'."""
    return MISSING if value is None else format(float(value), f".{digits}e")


def percent(value: float | None, digits: int = 0) -> str:
    """A fraction as a percentage (`.{digits}%`): 0.25 -> '25%'; NaN 'nan', infinities 'inf'/'-inf'."""
    if value is None:
        return MISSING
    value = float(value)
    return format(value, f".{digits}%") if math.isfinite(value) else format(value, "g")


def mean_sd_text(values: Iterable[float | None], digits: int = 3) -> str:
    """Values over seeds: '0.912 +- 0.004' (mean to `digits` significant digits, sample standard
    deviation to 1), '0.912' for one value, '-' for none. Non-finite values are not averaged but
    counted: '0.912 +- 0.004 (inf in 1/3)'; all of them non-finite: 'nan' when all are NaN, else
    'inf'."""
    given = [v for v in values if v is not None]
    if not given:
        return MISSING
    good = finite(given)
    bad = "nan" if all(math.isnan(v) for v in given if not math.isfinite(v)) else "inf"
    if not good:
        return bad
    mean, sd = mean_sd(good)
    text = format(mean, f".{digits}g") if len(good) == 1 else f"{mean:.{digits}g} +- {sd:.1g}"
    if len(good) < len(given):
        text += f" ({bad} in {len(given) - len(good)}/{len(given)})"
    return text


def ratio_spread(values: Iterable[float | None]) -> str:
    """A ratio over seeds that spans decades: '3.1e-07' for one seed, else the geometric mean with
    the range, '3.1e-07 [1e-07, 9e-07]'; an exact 0 is a float32 norm that underflowed: '0 (underflow)'
    when every seed's is, else '0 .. MAX'; 'nan' when no seed has a finite ratio."""
    good = finite(values)
    if not good:
        return "nan"
    if any(v == 0 for v in good):
        return "0 (underflow)" if all(v == 0 for v in good) else f"0 .. {max(good):.1e}"
    if len(good) == 1:
        return scientific(good[0])
    return f"{geometric_mean(good):.1e} [{min(good):.0e}, {max(good):.0e}]"
