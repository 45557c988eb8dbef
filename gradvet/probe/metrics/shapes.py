"""Shapes many metrics share, so that a metric's file says only what is its own."""

from __future__ import annotations

from gradvet.probe.metrics.layer_step import norm_of
from gradvet.probe.metrics.unit import INPUT, PARAMS, ROOT_SUM_SQUARES, SAMPLE_MEAN, Metric, Parts, root_sum_squares


class ScalarMetric(Metric):
    """A number `measure` gives as one 0-d tensor: the value is that number."""

    def value(self, got, row, layer):
        return got.scalars[0] if got.scalars else None


class SampleMean(ScalarMetric):
    """A mean over every sample of every call (SAMPLE_MEAN): a running sum of each call's values,
    `folded` as they arrive, divided on the host by the running count when the step ends."""

    combine = SAMPLE_MEAN

    def fold(self, layer, total, count: int) -> None:
        layer.add(self.name, total)
        layer.count(self.name, count)

    def measure(self, layer):
        total = layer.sums.get(self.name)
        return Parts(scalars=[total]) if total is not None else Parts()

    def value(self, got, row, layer):
        return got.scalars[0] / max(layer.counts.get(self.name, 0), 1) if got.scalars else None


class NormMetric(ScalarMetric):
    """A norm of gradients: each call's (or micro-batch's) tensor is reduced to its norm as it
    arrives and merged into the running root of the sum of squares, so calls and micro-batches
    combine as one long vector."""

    combine = ROOT_SUM_SQUARES

    def fold(self, layer, grad) -> None:
        layer.hypot(self.name, norm_of(grad))

    def measure(self, layer):
        total = layer.sums.get(self.name)
        return Parts(scalars=[total]) if total is not None else Parts()


class ParameterGradNorm(Metric):
    """||dL/dp|| over the layer's own parameters that `counts` picks: ||p.grad|| read when the backward
    pass had accumulated it (`LayerStep.grad_norms`), so before any clipping, and with gradient
    accumulation the norm of the gradient summed over the step's micro-batches."""

    kinds = frozenset({"weight", "norm"})
    reads = frozenset({PARAMS})
    combine = ROOT_SUM_SQUARES

    def counts(self, parameter_name: str) -> bool:
        raise NotImplementedError

    def measure(self, layer):
        return Parts(scalars=[n for name, n in layer.grad_norms.items() if self.counts(name)])

    def value(self, got, row, layer):
        return root_sum_squares(got.scalars) if got.scalars else None


INACTIVE = "inactive"  # the step's per-unit mask: f'(z) = 0 for every sample of every call (dead_fraction and
# persistent_dead_fraction share it)


class SlopeMetric(ScalarMetric):
    """A number read off |f'(z)| of an activation at its inputs (`Seen.slopes`), reduced in the forward
    pre-hook of each call: none where the activation is not one gradvet knows."""

    kinds = frozenset({"activation"})
    reads = frozenset({INPUT})

    def on_input(self, layer, seen):
        if seen.has_slopes:
            self.of_slopes(layer, seen)

    def of_slopes(self, layer, seen) -> None:
        raise NotImplementedError
