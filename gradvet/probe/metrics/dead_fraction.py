"""dead_fraction: units an activation switched off for the whole batch."""

from __future__ import annotations

from gradvet.probe.metrics.shapes import SlopeMetric
from gradvet.probe.metrics.unit import ACTIVATION, ALL_CALLS, Column, Parts


class DeadFraction(SlopeMetric):
    """The fraction of an activation's units inactive on this step's batch: f'(z) = 0 for every
    sample of every call, so no gradient reaches their incoming weights from this batch. Inactive
    is not dead: near initialisation it comes mostly from the correlation of deep representations
    (Lu et al. 2020); see `persistent_dead_fraction` and `probe.dead_units`."""

    name = "dead_fraction"
    combine = ALL_CALLS
    columns = (Column("dead_fraction", "inactive", ACTIVATION, digits=2),)

    def of_slopes(self, layer):
        return Parts(scalars=[layer.inactive.mean(dtype=layer.slopes.dtype)])
