"""update_ratio: how far one optimiser step moves a layer's parameters."""

from __future__ import annotations

from gradvet.probe.metrics.unit import AFTER, UPDATE, Metric, Parts, root_sum_squares


class UpdateRatio(Metric):
    """||W_before - W_after|| / ||W_before|| over the optimiser step, all of the layer's own
    parameters together (roots of the sums of squares, then the ratio). About 1e-3 is the usual
    rule of thumb for a healthy step (Karpathy, CS231n notes); one per optimiser step, so the
    micro-batches of gradient accumulation make one update. Needs the optimiser passed to the Probe."""

    name = "update_ratio"
    kinds = frozenset({"weight", "norm"})
    reads = frozenset({UPDATE})
    combine = AFTER

    def measure(self, layer):
        return Parts(norms=layer.update, scalars=layer.sizes)

    def value(self, got, row, layer):
        size = root_sum_squares(got.scalars)
        return root_sum_squares(got.norms) / size if got.norms and size > 0 else None
