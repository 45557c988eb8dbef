"""Inactive and dead units: f'(z) = 0 for every sample, on one batch or for a long time.

A unit (one output coordinate of an activation module) is *inactive on a batch* when
f'(z) = 0 for every sample of that batch: no gradient reaches its incoming weights from
that batch. Near initialisation a deep ReLU net has many such units without any dying:
the correlation map of ReLU pulls every pair of inputs towards c = 1 with depth
(Schoenholz et al. 2017, "Deep information propagation"), so deep representations of a
whole batch are nearly parallel and a unit is off for all of them at once (Lu et al. 2020,
"Dying ReLU and initialization"). Such units come back when the layers below them
train: in a 30-layer He-initialised ReLU net of width 128 on digits, 28% of the units are
inactive on the first batch, and after 400 SGD steps (lr 0.01) two thirds of those are
active again on that same batch.

A unit is called *dead* only when it has been inactive on every recorded step for at
least DEAD_SPAN training steps and DEAD_RECORDS recorded steps. The tracker keeps, per
unit, the step since which it has been inactive on every recorded step: O(units) memory
per activation module, updated on the device without a host copy.
"""

from __future__ import annotations

import torch

DEAD_SPAN = 100  # training steps a unit must stay inactive before it is called dead
DEAD_RECORDS = 3  # ... seen on at least this many recorded steps
_ACTIVE = 2**31 - 1  # `since` of a unit active on the latest recorded step


def inactive_units(slopes: torch.Tensor, samples: int = 0) -> torch.Tensor:
    """Per unit, whether f'(z) = 0 for every sample: `slopes` is |f'(z)| with the samples along
    dimension `samples` ((samples, units) by default; (runs, samples, units) with samples=1 in a
    batched group), so that is max over the samples = 0 (a NaN slope makes the max NaN: not
    inactive, as NaN == 0 is False). One reduction to a row, then one comparison of that row: on a
    CPU several times cheaper than comparing every value and reducing the bools."""
    if slopes.shape[samples] == 0:
        shape = slopes.shape[:samples] + slopes.shape[samples + 1:]
        return torch.ones(shape, dtype=torch.bool, device=slopes.device)
    return slopes.amax(dim=samples) == 0


class DeadUnitTracker:
    """Per activation module and unit, the first step of its current run of inactive recorded steps."""

    def __init__(self) -> None:
        self._since: dict[str, torch.Tensor] = {}
        self._first: dict[str, int] = {}  # first recorded step of the module's current history
        self._recent: dict[str, list[int]] = {}  # its last DEAD_RECORDS recorded steps

    def update(self, layer: str, step: int, inactive: torch.Tensor) -> torch.Tensor | None:
        """Take `layer`'s inactive mask (one bool per unit) at recorded step `step`; return the
        fraction of its units dead (inactive on every recorded step of at least the last DEAD_SPAN
        steps, DEAD_RECORDS recorded steps or more) as a 0-d tensor, or None while the module has
        not been watched that long. A change in the number of units starts its history afresh."""
        since = self._since.get(layer)
        if since is None or since.shape != inactive.shape or since.device != inactive.device:
            since = torch.full(inactive.shape, _ACTIVE, dtype=torch.int32, device=inactive.device)
            self._first[layer], self._recent[layer] = step, []
        since = torch.where(inactive, since.clamp(max=step), _ACTIVE)
        self._since[layer] = since
        recent = (self._recent[layer] + [step])[-DEAD_RECORDS:]
        self._recent[layer] = recent
        if len(recent) < DEAD_RECORDS:
            return None
        cutoff = min(step - DEAD_SPAN, recent[0])  # inactive since then: long enough, and on enough records
        if cutoff < self._first[layer]:
            return None
        return (since <= cutoff).float().mean()
