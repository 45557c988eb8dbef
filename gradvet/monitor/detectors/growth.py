"""Growth of the log gradient norm: exploding gradients building up over several steps.

Over the last `window` steps with a gradient, x_t = ln ||g_t||:
- b, the Theil-Sen slope of x against t (Theil 1950; Sen 1968: the median of
  pairwise slopes, so a lone spike does not move it), and the trend's growth
  over the window, G = exp(b * span);
- z, the Mann-Kendall z-score of the same pairs (Mann 1945; Kendall 1975): how
  consistently x rises, against the run's own noise.
The gradient is exploding when G >= `factor` (practically large) and
z >= `z` (a consistent rise, not a noisy wobble), from step `settle` on.
Healthy training moves the norm too: it rises over the first tens of steps as
the net leaves its initial plateau (hence `settle`; an explosion from the
first step is the update ratio's to see), and later falls with the loss or
wanders; an explosion compounds step after step. A rising learning rate (a
warm-up, a growing schedule) moves the norm as well: a window over which the
rate rose by more than `lr_rise` is left to `RisingLearningRate`, which judges
the rise by the size of the steps (on the tuning corpus, warm-ups to 0.1 fired
here in 3 of 7 runs without this gate, and none with it). The layer named is the one whose own norm grew fastest over the window;
`since` is the window's first step.
"""

from __future__ import annotations

import math
from collections import deque

from gradvet.monitor.alert import EXPLODING, Finding
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.window import mann_kendall_sd, theil_sen_slope, trend

# Chosen on the tuning corpus of benchmarks/early_warning.py (seeds 0-7; 49 healthy runs): at
# x2 over 16 steps with z >= 3.5, no healthy run fires after the first two windows, while the
# building explosions of a raised or growing learning rate fire 16-55 steps before the NaN. On the
# larger tuning corpus (seeds 0-15, 120 healthy runs), He-init ReLU MLPs at SGD 0.1 fired at steps 32-36
# (their norm rose x2.3-3 as they learnt): settling over three windows silences them and loses no catch.
# A longer window (24) fires on a periodic norm (a half period reads as a trend), so it stays 16.
WINDOW = 16
FACTOR = 2.0
Z = 3.5  # S >= 78 of the 120 pairs of a 16-step window rise (p < 0.0003 one-sided under no trend)
SETTLE = 3 * WINDOW  # the first steps, where a healthy norm rises as the net leaves its starting plateau
LR_RISE = 1.01  # a window over which the learning rate rose more than this is left to RisingLearningRate


class GradientGrowth:
    name = "growth"

    def __init__(self, window: int = WINDOW, factor: float = FACTOR, z: float = Z, settle: int = SETTLE,
                 lr_rise: float | None = LR_RISE):
        self.window, self.factor, self.z, self.settle, self.lr_rise = window, factor, z, settle, lr_rise
        self._steps: deque[int] = deque(maxlen=window)
        self._lrs: deque[float | None] = deque(maxlen=window)
        self._log: deque[float] = deque(maxlen=window)
        self._layers: deque[dict[str, float]] = deque(maxlen=window)
        self._concordance = 0  # the Mann-Kendall S of the window, kept up to date in O(window) per step

    def update(self, signals: StepSignals) -> list[Finding]:
        norm = signals.grad_norm
        if not (signals.has_gradient and math.isfinite(norm) and norm > 0):
            return []
        x = math.log(norm)
        staying = list(self._log)
        if len(staying) == self.window:  # the oldest value leaves: its pairs with the others go
            oldest = staying.pop(0)
            self._concordance -= sum((v > oldest) - (v < oldest) for v in staying)
        self._concordance += sum((x > v) - (x < v) for v in staying)
        self._steps.append(signals.step)
        self._lrs.append(signals.lr)
        self._log.append(x)
        self._layers.append(signals.layer_grad_norms)
        n = len(self._log)
        if n < self.window or signals.step < self.settle or self._concordance < self.z * mann_kendall_sd(n):
            return []
        if self._lr_rose():
            return []
        steps = list(self._steps)
        span = steps[-1] - steps[0]
        slope, z = trend(steps, list(self._log))
        growth = math.exp(slope * span)
        if not (growth >= self.factor and z >= self.z):
            return []
        layer, layer_growth = self._fastest_layer(steps)
        first = math.exp(self._log[0])
        where = f", fastest in {layer} (x{layer_growth:.3g})" if layer is not None else ""
        return [Finding(EXPLODING, layer,
                        f"the gradient norm has been growing since step {steps[0]}: x{growth:.3g} over {span} steps "
                        f"({first:.3g} -> {norm:.3g}; Mann-Kendall z = {z:.2g}){where}", since=steps[0], value=growth)]

    def _lr_rose(self) -> bool:
        """Whether the learning rate rose over the window by more than the factor `lr_rise`."""
        first, last = self._lrs[0], self._lrs[-1]
        return self.lr_rise is not None and first is not None and last is not None and last > self.lr_rise * first

    def _fastest_layer(self, steps: list[int]) -> tuple[str | None, float]:
        best: tuple[str | None, float] = (None, 0.0)
        span = steps[-1] - steps[0]
        for layer in self._layers[-1]:
            points = [(t, math.log(d[layer])) for t, d in zip(steps, self._layers)
                      if math.isfinite(d.get(layer, math.nan)) and d[layer] > 0]
            if len(points) < 2:
                continue
            g = math.exp(theil_sen_slope([t for t, _ in points], [v for _, v in points]) * span)
            if g > best[1]:
                best = (layer, g)
        return best
