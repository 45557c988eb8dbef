"""calls: a module run more than once in a forward pass."""

from __future__ import annotations

from gradvet.probe.metrics.unit import COUNT, Metric


class Calls(Metric):
    """How many times the module ran between two backward passes, recorded when more than once:
    weight sharing or recurrence (the other metrics then combine every call). The micro-batches of
    gradient accumulation (forward, backward, forward, backward, ...) are one call each, and the
    recomputation of activation checkpointing is no call."""

    name = "calls"
    combine = COUNT

    def value(self, got, row, layer):
        return float(layer.calls) if layer.calls > 1 else None
