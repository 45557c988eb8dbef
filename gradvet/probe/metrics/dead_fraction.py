"""dead_fraction: units an activation switched off for the whole batch."""

from __future__ import annotations

from gradvet.probe.metrics.unit import ACTIVATION, ALL_CALLS, INPUT, Column, Metric, Parts


class DeadFraction(Metric):
    """The fraction of an activation's units inactive on this step's batch: f'(z) = 0 for every
    sample of every call, so no gradient reaches their incoming weights from this batch. Inactive
    is not dead: near initialisation it comes mostly from the correlation of deep representations
    (Lu et al. 2020); see `persistent_dead_fraction` and `probe.dead_units`."""

    name = "dead_fraction"
    kinds = frozenset({"activation"})
    reads = frozenset({INPUT})
    combine = ALL_CALLS
    columns = (Column("dead_fraction", "inactive", ACTIVATION, digits=2),)

    def measure(self, layer):
        if not layer.has_slopes:
            return Parts()
        return Parts(scalars=[layer.inactive.mean(dtype=layer.slopes.dtype)])

    def value(self, got, row, layer):
        return got.scalars[0] if got.scalars else None
