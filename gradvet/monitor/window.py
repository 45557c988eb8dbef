"""Robust statistics over a short window of recent values (pure Python: a window is tens of numbers).

- median and MAD, the median absolute deviation; 1.4826 * MAD estimates the
  standard deviation of Gaussian data (Hampel 1974, "The influence curve and
  its role in robust estimation"), and one outlier cannot move either;
- the Theil-Sen slope, the median of the slopes of all pairs of points
  (Theil 1950; Sen 1968): a straight-line trend that ignores up to 29% outliers;
- the Mann-Kendall trend statistic S = sum over pairs i < j of sign(x_j - x_i),
  and its z-score S / sqrt(n (n - 1) (2n + 5) / 18) (no ties; Mann 1945,
  Kendall 1975): how consistently a series rises, whatever its noise level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): sigma = 1.4826 * MAD for Gaussian data


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def mad(values: Sequence[float], center: float) -> float:
    """Median absolute deviation of `values` from `center`."""
    return median([abs(v - center) for v in values])


def trend(steps: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(Theil-Sen slope, Mann-Kendall z) of `values` at increasing `steps`, from one pass over the pairs."""
    n = len(values)
    slopes: list[float] = []
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            d = values[j] - values[i]
            slopes.append(d / (steps[j] - steps[i]))
            s += int(d > 0) - int(d < 0)
    sd = mann_kendall_sd(n)
    return median(slopes), (s / sd if sd > 0 else 0.0)


def mann_kendall_sd(n: int) -> float:
    """The standard deviation of the Mann-Kendall S of n values without a trend (no ties)."""
    return math.sqrt(n * (n - 1) * (2 * n + 5) / 18)


def theil_sen_slope(steps: Sequence[float], values: Sequence[float]) -> float:
    """Median over pairs i < j of (values[j] - values[i]) / (steps[j] - steps[i]); steps increasing."""
    n = len(values)
    return median([(values[j] - values[i]) / (steps[j] - steps[i]) for i in range(n) for j in range(i + 1, n)])
