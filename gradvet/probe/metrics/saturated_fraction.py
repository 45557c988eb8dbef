"""saturated_fraction: units in the flat part of their activation."""

from __future__ import annotations

import math

import torch

from gradvet.probe.metrics.shapes import SampleMean, SlopeMetric
from gradvet.probe.metrics.unit import ACTIVATION, Column

SATURATION_LEVEL = 0.05  # a unit is saturated where |f'(z)| < 5% of max |f'|


class SaturatedFraction(SlopeMetric, SampleMean):
    """The fraction of (sample, unit) values where |f'(z)| < SATURATION_LEVEL max |f'|, over every
    sample and call of the step (a running count over the running number of values): units in the
    flat tails of a sigmoid or tanh pass almost no gradient (Glorot & Bengio 2010 saw the top sigmoid
    layer saturate at 0). Needs only max |f'| of the activation (`Activation.max_grad`), looked up
    when the probe is entered; not recorded where max |f'| is 0 or not finite."""

    name = "saturated_fraction"
    columns = (Column("saturated_fraction", "saturated", ACTIVATION, digits=2),)

    def prepare(self, watched):
        if watched.activation is not None:
            watched.activation.max_grad  # noqa: B018  (computed now, not inside a timed step)

    def of_slopes(self, layer, seen):
        top = seen.activation.max_grad
        if not (math.isfinite(top) and top > 0):
            return
        slopes = seen.slopes
        self.fold(layer, count_below(slopes, SATURATION_LEVEL * top), slopes.numel())


def count_below(values: torch.Tensor, level: float, dim: int | None = None) -> torch.Tensor:
    """How many of `values` are < level (NaN is not), as a 0-d float tensor (per slice along the other
    dimensions when `dim` is given, as a batched group's runs): sign(level - v) clamped at 0
    is 1 exactly where level - v > 0 (a difference of two distinct floats is never 0) and 0 elsewhere,
    NaN included (torch.sign(NaN) is 0). Float ops only: on a CPU about twice as cheap as
    (values < level).sum(), whose bools are compared and summed as int64. Summed in float32 whatever
    the values' dtype (a float16 sum is Inf past 65504, bfloat16's rounds past 256): exact below 2**24
    values (float32's integers), a relative error of about 1e-7 beyond."""
    below = (level - values).sign_().clamp_(min=0)
    return below.sum(dtype=torch.float32) if dim is None else below.sum(dim=dim, dtype=torch.float32)
