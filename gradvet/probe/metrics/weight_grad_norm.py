"""weight_grad_norm: the gradient of a layer's weights."""

from __future__ import annotations

from gradvet.probe.metrics.bias_grad_norm import is_bias
from gradvet.probe.metrics.shapes import ParameterGradNorm
from gradvet.probe.metrics.unit import Column


class WeightGradNorm(ParameterGradNorm):
    """||dL/dW|| over the layer's non-bias parameters together (root of the sum of their squared
    norms). dL/dW_l = delta_l a_{l-1}^T: level across layers even where the backward signal delta
    vanishes, if the forward signal a grows to match (Glorot & Bengio 2010), which is why the
    diagnosis does not judge by it."""

    name = "weight_grad_norm"
    columns = (Column("weight_grad_norm", "||dL/dW||", drawn=False),)

    def counts(self, parameter_name):
        return not is_bias(parameter_name)
