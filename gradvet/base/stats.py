"""Summaries of a handful of numbers (seeds, layers), the one place they are computed.

Every summary looks only at the finite values: a NaN or an infinity is a result that the
caller reports (a diverged seed, an overflowed norm), never a number to average in.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are numbers and finite, in order (None, NaN and +-inf dropped)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_sd(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (divisor n - 1) of the finite values; sd 0 for one
    value; (nan, nan) for none."""
    good = finite(values)
    if not good:
        return math.nan, math.nan
    return statistics.fmean(good), (statistics.stdev(good) if len(good) > 1 else 0.0)


def finite_mean(values: Iterable[float | None]) -> float:
    """Mean of the finite values (nan for none)."""
    return mean_sd(values)[0]


def product(values: Iterable[float | None]) -> float | None:
    """Product of the finite values (None when there are none): chain-rule factors multiplied across layers."""
    good = finite(values)
    return math.prod(good) if good else None


def geometric_mean(values: Iterable[float | None], default: float | None = None) -> float | None:
    """exp(mean(log v)) over the positive finite values (`default` when there are none): the mean
    factor per layer of a product of per-layer factors."""
    good = [v for v in finite(values) if v > 0]
    if not good:
        return default
    return math.exp(math.fsum(math.log(v) for v in good) / len(good))
