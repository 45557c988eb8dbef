"""bias_grad_norm: Nielsen's speed of learning of a layer."""

from __future__ import annotations

from gradvet.probe.metrics.unit import PARAMS, ROOT_SUM_SQUARES, Column, Metric, Parts, root_sum_squares


def is_bias(parameter_name: str) -> bool:
    """Whether a module's own parameter is a bias (bias, bias_ih_l0, ...); any other is a weight."""
    return parameter_name.startswith("bias")


class BiasGradNorm(Metric):
    """||dL/db|| over the layer's bias parameters together (root of the sum of their squared norms):
    the rate at which the layer's biases learn, Nielsen's "speed of learning" (Neural Networks and
    Deep Learning, ch. 5). Read from .grad when the step ends, so it is the gradient of every
    micro-batch of the step accumulated."""

    name = "bias_grad_norm"
    kinds = frozenset({"weight", "norm"})
    reads = frozenset({PARAMS})
    combine = ROOT_SUM_SQUARES
    columns = (Column("bias_grad_norm", "||dL/db||", drawn=False),)

    def measure(self, layer):
        return Parts(norms=[p.grad for name, p in layer.params if is_bias(name) and p.grad is not None])

    def value(self, got, row, layer):
        return root_sum_squares(got.norms) if got.norms else None
