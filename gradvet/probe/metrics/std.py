"""std: the size of the forward signal after an activation."""

from __future__ import annotations

import math

from gradvet.probe.metrics.unit import ACTIVATION, OUTPUT, SAMPLE_MEAN, Column, Metric, Parts


class Std(Metric):
    """The standard deviation of the activation's outputs over every sample, unit and call of the
    step, unbiased as torch.std: sqrt((E[a^2] - E[a]^2) n / (n - 1)), from two reductions (E[a]
    is the `mean` metric's). In the diagnosis it is shown relative to the model input's std: a
    forward signal that collapses or blows up with depth (Glorot & Bengio 2010)."""

    name = "std"
    kinds = frozenset({"activation"})
    reads = frozenset({OUTPUT})
    combine = SAMPLE_MEAN
    columns = (Column("forward_std", "forward std", ACTIVATION, relative_to_input=True),)

    def measure(self, layer):
        if not layer.outputs:
            return Parts()
        out = layer.output_rows
        return Parts(scalars=[(out * out).mean()])

    def value(self, got, row, layer):
        if not got.scalars or "mean" not in row:
            return None
        mean, mean_sq = row["mean"], got.scalars[0]
        n = max(layer.output_rows.numel(), 2)
        var = max(mean_sq - mean**2, 0.0) if math.isfinite(mean) else math.nan
        return math.sqrt(var * n / (n - 1))
