"""std of the model's input, the yardstick of the forward signal."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import ScalarMetric
from gradvet.probe.metrics.unit import INPUT, MODEL, SAMPLE_MEAN, Parts


class InputStd(ScalarMetric):
    """The standard deviation of the model's input (unbiased, torch.std) on the step's first
    forward pass, recorded as 'std' of the '<input>' pseudo-layer: the diagnosis divides each
    activation's output std by it (forward std)."""

    name = "std"
    scope = MODEL
    reads = frozenset({INPUT})
    combine = SAMPLE_MEAN

    def on_input(self, layer, seen):
        x = seen.tensor
        if self.name in layer.sums or not x.is_floating_point():
            return
        layer.sums[self.name] = x.std() if x.numel() > 1 else x.new_zeros(())

    def measure(self, layer):
        std = layer.sums.get(self.name)
        return Parts(scalars=[std]) if std is not None else Parts()
