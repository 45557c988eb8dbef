"""Shapes many metrics share, so that a metric's file says only what is its own."""

from __future__ import annotations

from gradvet.probe.metrics.unit import INPUT, PARAMS, ROOT_SUM_SQUARES, Metric, Parts, root_sum_squares


class NormMetric(Metric):
    """A norm: `measure` gives the tensors (per call, per parameter), the value is the root of the sum
    of their squared norms, so calls and micro-batches combine as one long vector."""

    combine = ROOT_SUM_SQUARES

    def value(self, got, row, layer):
        return root_sum_squares(got.norms) if got.norms else None


class ScalarMetric(Metric):
    """A number `measure` reduces to one 0-d tensor: the value is that number."""

    def value(self, got, row, layer):
        return got.scalars[0] if got.scalars else None


class ParameterGradNorm(NormMetric):
    """||dL/dp|| over the layer's own parameters that `counts` picks, read from .grad when the step ends
    (the gradient of every micro-batch of the step, accumulated)."""

    kinds = frozenset({"weight", "norm"})
    reads = frozenset({PARAMS})

    def counts(self, parameter_name: str) -> bool:
        raise NotImplementedError

    def measure(self, layer):
        return Parts(norms=[p.grad for name, p in layer.params if self.counts(name) and p.grad is not None])


class SlopeMetric(ScalarMetric):
    """A number read off |f'(z)| of an activation at its inputs (`LayerStep.slopes`): none where the
    activation is not one gradvet knows or its inputs were not seen."""

    kinds = frozenset({"activation"})
    reads = frozenset({INPUT})

    def measure(self, layer):
        return self.of_slopes(layer) if layer.has_slopes else Parts()

    def of_slopes(self, layer) -> Parts:
        raise NotImplementedError
