"""input_grad_norm: the backward signal a module passes on to its input."""

from __future__ import annotations

from gradvet.probe.metrics.layer_step import rows_of
from gradvet.probe.metrics.shapes import NormMetric
from gradvet.probe.metrics.unit import INPUT, INPUT_GRAD, OUTPUT_GRAD, Parts


class InputGradNorm(NormMetric):
    """||dL/d input|| through this module only. A weight or norm layer's is read off a private
    copy of its input (so a skip path's share, added to the original tensor, is not counted); an
    activation's is dL/dz = dL/da * f'(z) elementwise, from its input z and the gradient at its
    output a, with the catalog's closed-form f' (no copy of the input needed)."""

    name = "input_grad_norm"

    def needs(self, kind):
        return frozenset({INPUT, OUTPUT_GRAD}) if kind == "activation" else frozenset({INPUT_GRAD})

    def measure(self, layer):
        norms = list(layer.grad_in)
        if layer.has_slopes and layer.grad_out and len(layer.grad_out) == len(layer.inputs):
            by_call = [layer.grad_out[layer.grad_out_call.index(k)] for k in range(len(layer.inputs))]
            norms.append(rows_of(by_call) * layer.slopes)
        return Parts(norms=norms)
