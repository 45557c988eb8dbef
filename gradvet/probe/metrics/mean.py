"""mean: the mean of what an activation outputs."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import ScalarMetric
from gradvet.probe.metrics.unit import OUTPUT, SAMPLE_MEAN, Parts


class Mean(ScalarMetric):
    """E[a], the mean of the activation's outputs over every sample, unit and call of the step
    (not zero-centred outputs, as sigmoid's, shift the next layer's pre-activations: LeCun et al.
    1998, "Efficient BackProp")."""

    name = "mean"
    kinds = frozenset({"activation"})
    reads = frozenset({OUTPUT})
    combine = SAMPLE_MEAN

    def measure(self, layer):
        return Parts(scalars=[layer.output_rows.mean()]) if layer.outputs else Parts()
