"""output_grad_norm: the backward signal at a module's output."""

from __future__ import annotations

from gradvet.probe.metrics.unit import OUTPUT_GRAD, ROOT_SUM_SQUARES, Metric, Parts, root_sum_squares


class OutputGradNorm(Metric):
    """||dL/d output||, the norm of the gradient reaching the module's output: at a weight layer's
    output it is delta_l = ||dL/dz_l||, the backward signal at depth l whose ratio delta_1 / delta_L
    the diagnosis reads (for a linear layer the bias gradient is its sum over the batch)."""

    name = "output_grad_norm"
    reads = frozenset({OUTPUT_GRAD})
    combine = ROOT_SUM_SQUARES

    def measure(self, layer):
        return Parts(norms=layer.grad_out)

    def value(self, got, row, layer):
        return root_sum_squares(got.norms) if got.norms else None
