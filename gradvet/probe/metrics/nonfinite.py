"""nonfinite: a layer with a NaN or Inf among its numbers."""

from __future__ import annotations

from gradvet.probe.metrics.unit import AFTER, Metric


class Nonfinite(Metric):
    """1 where any of the layer's recorded numbers of the step is NaN or Inf (an overflow; a
    metric whose NaN means something else, as gain's 0/0, declares `nonfinite_is_overflow =
    False`). It reads the whole row, so it comes after every other layer metric."""

    name = "nonfinite"
    combine = AFTER
    reads_whole_row = True

    def value(self, got, row, layer):
        return 1.0 if row.overflowed() else None
