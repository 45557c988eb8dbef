"""Vanishing: one layer's gradient collapsing against its own early level, while the rest does not.

Per layer l, over blocks of `block` steps: e_l = median ||g_l|| over the first
block (the early level), r_l = median over the latest block / e_l, and the
same r for the total norm. Layer l is vanishing when r_l < `collapse` and
r_l < `relative` * r_total: its gradient fell `1/collapse`-fold and much further
than the whole net's (a converging run shrinks every gradient together and is
not flagged). A layer whose gradient is exactly 0 over a block (all units
dead) has r_l = 0. Evaluated once per block, so the cost per step is appends.
"""

from __future__ import annotations

import math

from gradvet.monitor.alert import VANISHING, Finding
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.window import median

BLOCK = 20
COLLAPSE = 1e-3
RELATIVE = 1e-2
TOTAL = "(total)"


class LayerCollapse:
    name = "vanishing"

    def __init__(self, block: int = BLOCK, collapse: float = COLLAPSE, relative: float = RELATIVE):
        self.block, self.collapse, self.relative = block, collapse, relative
        self._early: dict[str, float] | None = None
        self._current: dict[str, list[float]] = {}
        self._early_step = 0

    def update(self, signals: StepSignals) -> list[Finding]:
        if not (signals.has_gradient and math.isfinite(signals.grad_norm)):
            return []
        for layer, v in ((TOTAL, signals.grad_norm), *signals.layer_grad_norms.items()):
            if math.isfinite(v):
                self._current.setdefault(layer, []).append(v)
        if len(self._current[TOTAL]) < self.block:
            return []
        level = {layer: median(values) for layer, values in self._current.items()}
        self._current = {}
        if self._early is None:
            self._early, self._early_step = level, signals.step
            return []
        ratios = {layer: level[layer] / e for layer, e in self._early.items() if layer in level and e > 0}
        total = ratios.get(TOTAL, math.nan)
        found = []
        for layer, r in ratios.items():
            if layer != TOTAL and r < self.collapse and r < self.relative * total:
                found.append(Finding(VANISHING, layer,
                                     f"the gradient of {layer} fell to {r:.3g} of its early level "
                                     f"({self._early[layer]:.3g} -> {level[layer]:.3g}, medians over "
                                     f"{self.block} steps) while the whole net's is at {total:.3g} of its own",
                                     since=self._early_step, value=r))
        return found
