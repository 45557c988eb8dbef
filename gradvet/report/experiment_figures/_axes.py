"""What the experiment figures share."""

from __future__ import annotations

import math
from collections.abc import Sequence


def log_values(values: Sequence[float | None]) -> list[float]:
    """Values for a log axis: None, zeros, negatives and non-finite values become nan (not drawn)."""
    return [v if v is not None and math.isfinite(v) and v > 0 else math.nan for v in values]


def finish(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Name the axes and the panel, draw a light grid at major and minor ticks, and a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
