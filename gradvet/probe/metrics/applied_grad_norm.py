"""applied_grad_norm: the gradient the optimiser applied, after any clipping."""

from __future__ import annotations

from gradvet.probe.metrics.unit import PARAMS, ROOT_SUM_SQUARES, Metric, Parts, root_sum_squares


class AppliedGradNorm(Metric):
    """||p.grad|| over all of the layer's own parameters together, read when the step ends (at the
    optimiser's step, or at probe.step()): the gradient the optimiser applied, after clip_grad_norm_
    or clip_grad_value_ (weight_grad_norm and bias_grad_norm are read when backward has accumulated
    the gradient, before any clipping). Over all layers, its root sum of squares is the total norm
    after clipping, at most the clipping threshold."""

    name = "applied_grad_norm"
    kinds = frozenset({"weight", "norm"})
    reads = frozenset({PARAMS})
    combine = ROOT_SUM_SQUARES

    def measure(self, layer):
        grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad
                 for _, p in layer.params if p.grad is not None]
        return Parts(norms=grads) if grads else Parts()

    def value(self, got, row, layer):
        return root_sum_squares(got.norms) if got.norms else None
