"""dead_fraction: units an activation switched off for the whole batch."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import INACTIVE, SlopeMetric
from gradvet.probe.metrics.unit import ACTIVATION, ALL_CALLS, Column, Parts


class DeadFraction(SlopeMetric):
    """The fraction of an activation's units inactive on this step's batch: f'(z) = 0 for every
    sample of every call, so no gradient reaches their incoming weights from this batch (the AND of
    each call's per-unit mask, O(units)). Inactive is not dead: near initialisation it comes mostly
    from the correlation of deep representations (Lu et al. 2020); see `persistent_dead_fraction`
    and `probe.dead_units`."""

    name = "dead_fraction"
    combine = ALL_CALLS
    columns = (Column("dead_fraction", "inactive", ACTIVATION, digits=2),)

    def of_slopes(self, layer, seen):
        layer.all(INACTIVE, seen.inactive, once_per_call=True)

    def measure(self, layer):
        mask = layer.sums.get(INACTIVE)
        return Parts(scalars=[mask.sum()]) if mask is not None else Parts()

    def value(self, got, row, layer):
        return got.scalars[0] / max(layer.sums[INACTIVE].numel(), 1) if got.scalars else None
