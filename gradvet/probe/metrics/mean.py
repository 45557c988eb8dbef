"""mean: the mean of what an activation outputs."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import SampleMean
from gradvet.probe.metrics.unit import OUTPUT


class Mean(SampleMean):
    """E[a], the mean of the activation's outputs over every sample, unit and call of the step
    (not zero-centred outputs, as sigmoid's, shift the next layer's pre-activations: LeCun et al.
    1998, "Efficient BackProp"): the sum of each call's outputs, over their count."""

    name = "mean"
    kinds = frozenset({"activation"})
    reads = frozenset({OUTPUT})

    def on_output(self, layer, seen):
        self.fold(layer, seen.tensor.sum(), seen.numel)
