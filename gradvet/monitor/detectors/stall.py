"""Stall: the loss still at its starting level after `min_steps` steps (reads the loss).

Over blocks of `block` steps: e = median loss over the first block, c = median
over the latest block. The run has stalled when, from step `min_steps` on,
|c - e| <= `tolerance` * e: nothing has been learnt (a deep sigmoid net whose
first layers get no gradient, a learning rate far too small, a dead net). A
run that learnt and then levelled off is not a stall: its c is far below e.
"""

from __future__ import annotations

import math

from gradvet.monitor.alert import STALL, Finding
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.window import median

BLOCK = 20
MIN_STEPS = 200
TOLERANCE = 0.02


class LossStall:
    name = "stall"

    def __init__(self, block: int = BLOCK, min_steps: int = MIN_STEPS, tolerance: float = TOLERANCE):
        self.block, self.min_steps, self.tolerance = block, min_steps, tolerance
        self._early: float | None = None
        self._current: list[float] = []

    def update(self, signals: StepSignals) -> list[Finding]:
        if signals.loss is None or not math.isfinite(signals.loss):
            return []
        self._current.append(signals.loss)
        if len(self._current) < self.block:
            return []
        level, self._current = median(self._current), []
        if self._early is None:
            self._early = level
            return []
        if signals.step + 1 < self.min_steps or not abs(level - self._early) <= self.tolerance * abs(self._early):
            return []
        return [Finding(STALL, None,
                        f"the loss is still {level:.4g} after {signals.step + 1} steps, within "
                        f"{100 * self.tolerance:g}% of its start ({self._early:.4g}; medians over {self.block} steps)",
                        since=0, value=level)]
