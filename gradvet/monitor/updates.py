"""Update ratios ||W_after - W_before|| / ||W_before|| per layer, on sampled steps.

The ratio says how much of a layer one optimiser step rewrites; about 1e-3 is
the rule of thumb for healthy training (Karpathy, CS231n notes, "Neural
Networks Part 3": ratio of update magnitudes to value magnitudes), and a ratio
near or above 1 means a step rewrites the layer entirely. Reading it needs a
copy of the parameters before the step, so only some steps are sampled: the
first FIRST_STEPS steps (an explosion from the start shows at once), every
`every`-th step after, and any step whose learning
rate is more than LR_JUMP times the rate of the last sampled step (a jump or a
steep schedule shows at once; a decaying rate never triggers it). The copy goes
into buffers allocated once, and the norms stay on the device until the step's
one host copy.
"""

from __future__ import annotations

import torch

LR_JUMP = 1.5
FIRST_STEPS = 10


class UpdateNorms:
    """Snapshots the parameters before a sampled step; gives ||dW_p|| and ||W_p|| per parameter after it."""

    def __init__(self, params: list[torch.Tensor], every: int):
        self.params, self.every = params, every
        self._buffers: list[torch.Tensor] = []
        self._size: torch.Tensor | None = None  # ||W_p|| before the step, one entry per parameter
        self._sampled_lr: float | None = None  # the learning rate of the last sampled step

    def sampled(self, step: int, lr: float | None = None) -> bool:
        """Whether to read the update ratio of `step` (taken at learning rate `lr`, when known)."""
        jump = lr is not None and self._sampled_lr is not None and lr > LR_JUMP * self._sampled_lr
        if step < FIRST_STEPS or step % self.every == 0 or jump:
            self._sampled_lr = lr
            return True
        return False

    def before(self) -> None:
        """Copy the parameters (call just before the optimiser step of a sampled step)."""
        values = [p.detach() for p in self.params]
        if not values:
            return
        if len(self._buffers) != len(values) or any(b.shape != v.shape or b.dtype != v.dtype or b.device != v.device
                                                    for b, v in zip(self._buffers, values)):
            self._buffers = [torch.empty_like(v) for v in values]
        with torch.no_grad():
            torch._foreach_copy_(self._buffers, values)
            self._size = _stacked(torch._foreach_norm(values))

    def after(self) -> torch.Tensor | None:
        """[||dW_p||..., ||W_p||...] as one 1-d tensor (call just after the step), or None without a snapshot."""
        if self._size is None:
            return None
        with torch.no_grad():
            torch._foreach_sub_(self._buffers, [p.detach() for p in self.params])  # buffers hold W_before - W_after
            delta = _stacked(torch._foreach_norm(self._buffers))
        size, self._size = self._size, None
        return torch.cat([delta, size.to(delta.device, delta.dtype)])

    def forget(self) -> None:
        self._size = None


def _stacked(norms) -> torch.Tensor:
    device, dtype = norms[0].device, norms[0].dtype
    if any(n.device != device or n.dtype != dtype for n in norms):
        norms = [n.to(device=device, dtype=torch.float64) for n in norms]
    return torch.stack(list(norms))
