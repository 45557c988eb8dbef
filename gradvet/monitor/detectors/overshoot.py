"""Overshoot: large updates while the loss does not fall, a learning rate too large (reads the loss).

On each step with update ratios (see `gradvet.monitor.updates`): r = median of
the largest ratio ||dW||/||W|| over layers of the last `sustain` sampled steps,
and p = median loss of the last `window` steps / median loss of the first
`early` steps. The optimiser overshoots when r > `ratio` (a hundred times the
healthy 1e-3 of Karpathy's CS231n notes, "Neural Networks Part 3") while
p > `progress`: each step rewrites a tenth of the weights and yet the loss has
not fallen by a fifth since the start. This is the classic symptom of a
learning rate above the stable 2 / sharpness (Cohen et al. 2021, "Gradient
descent on neural networks typically occurs at the edge of stability"): the
iterate bounces across the valley, and sooner or later out of it.
"""

from __future__ import annotations

import math
from collections import deque

from gradvet.monitor.alert import UNSTABLE, Finding
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.window import median

# Checked on the benchmark's tuning corpus (seeds 0-15, 120 healthy runs): at 0.1, 3 healthy runs
# fired (a cosine schedule from 0.2 and two clipped RNNs, ratios 0.101-0.108); 0.12 fires in none and
# keeps the catches; 0.15 loses a tenth of them.
RATIO = 0.12
PROGRESS = 0.8
SUSTAIN = 3
WINDOW = 10
EARLY = 5


class Overshoot:
    name = "overshoot"

    def __init__(self, ratio: float = RATIO, progress: float = PROGRESS, sustain: int = SUSTAIN,
                 window: int = WINDOW, early: int = EARLY):
        self.ratio, self.progress, self.sustain, self.window, self.early = ratio, progress, sustain, window, early
        self._ratios: deque[float] = deque(maxlen=sustain)
        self._losses: deque[float] = deque(maxlen=window)
        self._first: list[float] = []

    def update(self, signals: StepSignals) -> list[Finding]:
        loss = signals.loss
        if loss is not None and math.isfinite(loss):
            self._losses.append(loss)
            if len(self._first) < self.early:
                self._first.append(loss)
        if not signals.update_ratios:
            return []
        largest = max(signals.update_ratios.values())
        self._ratios.append(largest if math.isfinite(largest) else math.inf)
        if len(self._ratios) < self.sustain or len(self._losses) < self.window or len(self._first) < self.early:
            return []
        r, start, now = median(self._ratios), median(self._first), median(self._losses)
        if not (r > self.ratio and now > self.progress * start):
            return []
        lr = f" at learning rate {signals.lr:.3g}" if signals.lr is not None else ""
        return [Finding(UNSTABLE, None,
                        f"the optimiser overshoots{lr}: each step changes the weights by {r:.3g} of their size (median "
                        f"of the last {self.sustain} sampled steps; healthy about 1e-3) while the loss is still "
                        f"{now:.4g} against {start:.4g} at the start (medians)", value=r)]
