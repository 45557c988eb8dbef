"""input_grad_norm: the backward signal a module passes on to its input."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import NormMetric
from gradvet.probe.metrics.unit import INPUT_GRAD


class InputGradNorm(NormMetric):
    """||dL/d input|| through this module: per call, the vector-Jacobian product of the module's
    forward at its distinct tensor inputs, J^T dL/d output (what torch.autograd.grad(output, inputs,
    dL/d output) gives), one vector per distinct input tensor; an input passed several times (the
    query, key and value of self-attention) gets the sum through all its uses, an input that needs
    no gradient none, and a skip path around the module adds nothing. The norm is over every
    distinct input of every call together. Read by `probe.input_grads` off autograd's own backward
    nodes, without changing the graph."""

    name = "input_grad_norm"
    reads = frozenset({INPUT_GRAD})

    def on_input_grad(self, layer, grad):
        self.fold(layer, grad)
