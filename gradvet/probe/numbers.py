"""The arithmetic and the wording of the diagnosis' numbers, shared by the diagnosis and its remedies."""

from __future__ import annotations

import math


def geometric_mean(values: list[float]) -> float | None:
    """Geometric mean of the positive finite values (None when there are none): the mean factor per layer."""
    good = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not good:
        return None
    return math.exp(sum(math.log(v) for v in good) / len(good))


def product(values: list[float | None]) -> float | None:
    """Product of the finite values (None when there are none): chain-rule factors multiplied across layers."""
    good = [v for v in values if v is not None and math.isfinite(v)]
    return math.prod(good) if good else None


def short_number(v: float | None) -> str:
    """2 significant digits, scientific outside [1e-3, 1e4); '?' for None."""
    if v is None:
        return "?"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.2g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.1e}"
