"""calls: a module run more than once in a step."""

from __future__ import annotations

from gradvet.probe.metrics.unit import COUNT, Metric


class Calls(Metric):
    """How many forward passes ran the module in the step, recorded when more than one: weight
    sharing or recurrence (the other metrics then combine every call)."""

    name = "calls"
    combine = COUNT

    def value(self, got, row, layer):
        return float(layer.calls) if layer.calls > 1 else None
