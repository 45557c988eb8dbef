"""persistent_dead_fraction: units inactive for a long time, which the diagnosis calls dead."""

from __future__ import annotations

from gradvet.probe.dead_units import DeadUnitTracker
from gradvet.probe.metrics.shapes import INACTIVE, SlopeMetric
from gradvet.probe.metrics.unit import ACTIVATION, ALL_CALLS, Column, Parts


class PersistentDeadFraction(SlopeMetric):
    """The fraction of an activation's units inactive (f'(z) = 0 for every sample) on every
    recorded step for at least the last DEAD_SPAN training steps and DEAD_RECORDS recorded steps;
    recorded once the module has been watched that long. The step's inactive mask is the AND of
    each call's; the per-unit history is kept on the device by a `probe.dead_units.DeadUnitTracker`,
    one per probe (this metric's instance)."""

    name = "persistent_dead_fraction"
    combine = ALL_CALLS
    columns = (Column("persistent_dead_fraction", "dead", ACTIVATION, digits=2, optional=True),)

    def __init__(self) -> None:
        self.tracker = DeadUnitTracker()

    def of_slopes(self, layer, seen):
        layer.all(INACTIVE, seen.inactive, once_per_call=True)

    def measure(self, layer):
        mask = layer.sums.get(INACTIVE)
        if mask is None:
            return Parts()
        dead = self.tracker.update(layer.name, layer.step, mask)
        return Parts() if dead is None else Parts(scalars=[dead])
