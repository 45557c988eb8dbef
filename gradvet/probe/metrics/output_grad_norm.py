"""output_grad_norm: the backward signal at a module's output."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import NormMetric
from gradvet.probe.metrics.unit import OUTPUT_GRAD


class OutputGradNorm(NormMetric):
    """||dL/d output||, the norm of the gradient reaching the module's output: at a weight layer's
    output it is delta_l = ||dL/dz_l||, the backward signal at depth l whose ratio delta_1 / delta_L
    the diagnosis reads (for a linear layer the bias gradient is its sum over the batch)."""

    name = "output_grad_norm"
    reads = frozenset({OUTPUT_GRAD})

    def on_output_grad(self, layer, grad):
        self.fold(layer, grad)
