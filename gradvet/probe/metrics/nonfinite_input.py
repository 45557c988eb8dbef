"""nonfinite_input: the module whose input first held a NaN or Inf."""

from __future__ import annotations

from gradvet.probe.metrics.unit import AFTER, FINITE, Metric


class NonfiniteInput(Metric):
    """1 on the first watched module in forward order holding a NaN or Inf when that value was
    already in its input: made upstream, by code the probe does not watch, or in the data
    (see `probe.nonfinite`)."""

    name = "nonfinite_input"
    reads = frozenset({FINITE})
    combine = AFTER

    def value(self, got, row, layer):
        first = layer.first_nonfinite_forward
        return 1.0 if first is not None and first[0] == layer.name and first[1] else None
