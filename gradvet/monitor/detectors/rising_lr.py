"""A rising learning rate that already makes large steps: a schedule taking the run out of its stable range.

Over the last `window` steps with a known learning rate: G = lr_t / lr_(t - window)
(the oldest kept), and r = the largest update ratio ||dW||/||W|| over layers on the
latest sampled step (`gradvet.monitor.updates` samples every step whose rate jumps by
half, so a jump is read at once). The rate is taking the run out of its stable range when
G >= `factor` while r > `ratio` and the rate is still rising (lr_t > lr_(t-1)): the rate has
at least doubled within the window, has not levelled off, and each step already rewrites
more than a twentieth of a layer (fifty times the healthy 1e-3 of
Karpathy's CS231n notes). Past the stable rate, 2 / sharpness (Cohen et al. 2021, "Gradient
descent on neural networks typically occurs at the edge of stability"), SGD's iterates
grow geometrically, and a growing rate only gets there faster; the gradient norm itself
often stays level until the last few steps. A warm-up that ends at a sane rate keeps r
below `ratio` (its steps are small while the rate is low), and once it has ended its
rate no longer rises (a warm-up to 0.1 whose first step at the top was sampled fired in
2 of 16 fresh runs before the last condition). The update ratio alone is
`UpdateRatioCeiling`'s; large steps at a steady rate are `Overshoot`'s to judge.
"""

from __future__ import annotations

import math
from collections import deque

from gradvet.monitor.alert import UNSTABLE, Finding
from gradvet.monitor.signals import StepSignals

# Checked on the benchmark's tuning corpus (seeds 0-7, 101 runs), with the growth detector's gate: recall
# 0.87 -> 0.91 and median lead 9 -> 13 steps (28 on the runs lost after step 15), no healthy run fires
# (warm-ups to 0.1 included); a ratio of 0.03 adds three false alarms, 0.08 costs three steps of median
# lead; a window of 16 changes nothing there, a factor of 3 with it loses two catches.
# The still-rising condition: on seeds 0-15 it silences the end of two warm-ups and loses no catch.
WINDOW = 32
FACTOR = 2.0
RATIO = 0.05


class RisingLearningRate:
    name = "rising_lr"

    def __init__(self, window: int = WINDOW, factor: float = FACTOR, ratio: float = RATIO):
        self.window, self.factor, self.ratio = window, factor, ratio
        self._lrs: deque[tuple[int, float]] = deque(maxlen=window + 1)

    def update(self, signals: StepSignals) -> list[Finding]:
        lr = signals.lr
        if lr is None or not (math.isfinite(lr) and lr > 0):
            return []
        self._lrs.append((signals.step, lr))
        if not signals.update_ratios:
            return []
        (first_step, first_lr) = self._lrs[0]
        if len(self._lrs) < 2 or not lr > self._lrs[-2][1]:
            return []  # levelled off (the end of a warm-up) or falling: no longer a rising rate
        growth = lr / first_lr
        layer, r = max(signals.update_ratios.items(), key=lambda kv: kv[1] if math.isfinite(kv[1]) else math.inf)
        if not (growth >= self.factor and r > self.ratio):
            return []
        return [Finding(UNSTABLE, layer,
                        f"the learning rate rose x{growth:.3g} since step {first_step} ({first_lr:.3g} -> {lr:.3g}) "
                        f"while one step already changes {layer} by {r:.3g} of its size (||dW||/||W||, healthy "
                        f"about 1e-3)", since=first_step, value=growth)]
