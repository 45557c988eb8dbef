"""std of the model's input, the yardstick of the forward signal."""

from __future__ import annotations

import math

from gradvet.probe.metrics.layer_step import norm_of
from gradvet.probe.metrics.shapes import ScalarMetric
from gradvet.probe.metrics.unit import INPUT, MODEL, SAMPLE_MEAN, Parts


class InputStd(ScalarMetric):
    """The standard deviation of the model's input (unbiased, torch.std) on the step's first
    forward pass, recorded as 'std' of the '<input>' pseudo-layer: the diagnosis divides each
    activation's output std by it (forward std). Taken in two passes, ||x - mean(x)|| / sqrt(n - 1),
    the same number as torch.std (to float rounding) at about a third of its cost on a CPU."""

    name = "std"
    scope = MODEL
    reads = frozenset({INPUT})
    combine = SAMPLE_MEAN

    def on_input(self, layer, seen):
        x = seen.tensor
        if self.name in layer.sums or not x.is_floating_point():
            return
        n = x.numel()
        layer.sums[self.name] = norm_of(x - x.mean()) / math.sqrt(n - 1) if n > 1 else x.new_zeros(())

    def measure(self, layer):
        std = layer.sums.get(self.name)
        return Parts(scalars=[std]) if std is not None else Parts()
