"""gain: the factor a module multiplies the backward signal by."""

from __future__ import annotations

import math

from gradvet.probe.metrics.unit import ABOVE, ACTIVATION, AFTER, Column, Metric


class Gain(Metric):
    """||dL/d input|| / ||dL/d output|| through the module, from the combined norms: the
    article's chain-rule factor, measured. Through an activation it is the activation factor
    (|f'(z)| weighted by the gradient), through the weight layer above it the weight factor
    (W^T); per hidden layer their products telescope to delta_1 / delta_L. NaN when no gradient
    reached the output (0/0), which is not an overflow."""

    name = "gain"
    combine = AFTER
    nonfinite_is_overflow = False
    columns = (Column("activation_gain", "activation factor", ACTIVATION),
               Column("weight_gain", "weight factor", ABOVE))

    def value(self, got, row, layer):
        if "output_grad_norm" not in row or "input_grad_norm" not in row:
            return None
        out = row["output_grad_norm"]
        return row["input_grad_norm"] / out if out > 0 else math.nan
