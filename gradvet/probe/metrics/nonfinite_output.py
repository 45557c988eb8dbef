"""nonfinite_output: the module that first made a NaN or Inf."""

from __future__ import annotations

from gradvet.probe.metrics.unit import AFTER, FINITE, Metric


class NonfiniteOutput(Metric):
    """1 on the first watched module in forward order holding a NaN or Inf when its input was
    finite: the module itself made it (see `probe.nonfinite`)."""

    name = "nonfinite_output"
    reads = frozenset({FINITE})
    combine = AFTER

    def value(self, got, row, layer):
        first = layer.first_nonfinite_forward
        return 1.0 if first is not None and first[0] == layer.name and not first[1] else None
