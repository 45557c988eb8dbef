"""weight_grad_norm: the gradient of a layer's weights."""

from __future__ import annotations

from gradvet.probe.metrics.bias_grad_norm import is_bias
from gradvet.probe.metrics.unit import PARAMS, ROOT_SUM_SQUARES, Column, Metric, Parts, root_sum_squares


class WeightGradNorm(Metric):
    """||dL/dW|| over the layer's non-bias parameters together (root of the sum of their squared
    norms), read from .grad when the step ends. dL/dW_l = delta_l a_{l-1}^T: level across layers
    even where the backward signal delta vanishes, if the forward signal a grows to match (Glorot
    & Bengio 2010), which is why the diagnosis does not judge by it."""

    name = "weight_grad_norm"
    kinds = frozenset({"weight", "norm"})
    reads = frozenset({PARAMS})
    combine = ROOT_SUM_SQUARES
    columns = (Column("weight_grad_norm", "||dL/dW||", drawn=False),)

    def measure(self, layer):
        return Parts(norms=[p.grad for name, p in layer.params if not is_bias(name) and p.grad is not None])

    def value(self, got, row, layer):
        return root_sum_squares(got.norms) if got.norms else None
