"""bias_grad_norm: Nielsen's speed of learning of a layer."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import ParameterGradNorm
from gradvet.probe.metrics.unit import Column


def is_bias(parameter_name: str) -> bool:
    """Whether a module's own parameter is a bias (bias, bias_ih_l0, ...); any other is a weight."""
    return parameter_name.startswith("bias")


class BiasGradNorm(ParameterGradNorm):
    """||dL/db|| over the layer's bias parameters together (root of the sum of their squared norms):
    the rate at which the layer's biases learn, Nielsen's "speed of learning" (Neural Networks and
    Deep Learning, ch. 5)."""

    name = "bias_grad_norm"
    columns = (Column("bias_grad_norm", "||dL/db||", drawn=False),)

    def counts(self, parameter_name):
        return is_bias(parameter_name)
