"""norm_layer: marks a normalisation layer in the trace."""

from __future__ import annotations

from gradvet.probe.metrics.unit import AFTER, Metric


class NormLayer(Metric):
    """1 on a normalisation layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm), so a
    trace read back without its model still knows which layers rescale the signal."""

    name = "norm_layer"
    kinds = frozenset({"norm"})
    combine = AFTER

    def value(self, got, row, layer):
        return 1.0
