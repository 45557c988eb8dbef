"""std: the size of the forward signal after an activation."""

from __future__ import annotations

import math

from gradvet.probe.metrics.shapes import SampleMean
from gradvet.probe.metrics.unit import ACTIVATION, OUTPUT, Column


class Std(SampleMean):
    """The standard deviation of the activation's outputs over every sample, unit and call of the
    step, unbiased as torch.std: sqrt((E[a^2] - E[a]^2) n / (n - 1)), E[a^2] from the running sum
    of squares over the running count (E[a] is the `mean` metric's). In the diagnosis it is shown
    relative to the model input's std: a forward signal that collapses or blows up with depth
    (Glorot & Bengio 2010)."""

    name = "std"
    kinds = frozenset({"activation"})
    reads = frozenset({OUTPUT})
    columns = (Column("forward_std", "forward std", ACTIVATION, relative_to_input=True),)

    def on_output(self, layer, seen):
        out = seen.tensor
        self.fold(layer, (out * out).sum(), seen.numel)

    def value(self, got, row, layer):
        mean_sq = super().value(got, row, layer)
        if mean_sq is None or "mean" not in row:
            return None
        mean = row["mean"]
        n = max(layer.counts.get(self.name, 0), 2)
        var = max(mean_sq - mean**2, 0.0) if math.isfinite(mean) else math.nan
        return math.sqrt(var * n / (n - 1))
