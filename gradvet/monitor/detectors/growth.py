"""Growth rate of the log gradient norm: exploding gradients building up over several steps.

Over the last `window` steps with a gradient, b = Theil-Sen slope of
ln ||g_t|| against t (Theil 1950; Sen 1968: the median of pairwise slopes, so
a lone spike does not move it). The gradient is exploding when the trend's
growth over the window, exp(b * (window - 1)), reaches `factor`. Healthy
training also moves the norm (it rises as the net leaves its initial plateau,
falls as the loss falls), but by a few percent per step; an explosion
compounds. The layer named is the one whose own norm grew fastest over the
same window; `since` is the first step of the window.
"""

from __future__ import annotations

import math
from collections import deque

from gradvet.monitor.alert import EXPLODING, Finding
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.window import theil_sen_slope

WINDOW = 8
FACTOR = 4.0  # measured: see benchmarks/early_warning.py


class GradientGrowth:
    name = "growth"

    def __init__(self, window: int = WINDOW, factor: float = FACTOR):
        self.window, self.factor = window, factor
        self._steps: deque[int] = deque(maxlen=window)
        self._log: deque[float] = deque(maxlen=window)
        self._layers: deque[dict[str, float]] = deque(maxlen=window)

    def update(self, signals: StepSignals) -> list[Finding]:
        norm = signals.grad_norm
        if not (signals.has_gradient and math.isfinite(norm) and norm > 0):
            return []
        self._steps.append(signals.step)
        self._log.append(math.log(norm))
        self._layers.append(signals.layer_grad_norms)
        if len(self._log) < self.window:
            return []
        steps = list(self._steps)
        span = steps[-1] - steps[0]
        growth = math.exp(theil_sen_slope(steps, list(self._log)) * span)
        if not growth >= self.factor:
            return []
        layer, layer_growth = self._fastest_layer(steps)
        first = math.exp(self._log[0])
        per_step = growth ** (1.0 / span) if span > 0 else math.inf
        where = f", fastest in {layer} (x{layer_growth:.3g})" if layer is not None else ""
        return [Finding(EXPLODING, layer,
                        f"the gradient norm grew x{growth:.3g} in {span} steps ({first:.3g} -> {norm:.3g}, "
                        f"x{per_step:.3g} per step){where}", since=steps[0], value=growth)]

    def _fastest_layer(self, steps: list[int]) -> tuple[str | None, float]:
        best: tuple[str | None, float] = (None, 0.0)
        span = steps[-1] - steps[0]
        for layer in self._layers[-1]:
            values = [d.get(layer, math.nan) for d in self._layers]
            points = [(t, math.log(v)) for t, v in zip(steps, values) if math.isfinite(v) and v > 0]
            if len(points) < 2:
                continue
            g = math.exp(theil_sen_slope([t for t, _ in points], [v for _, v in points]) * span)
            if g > best[1]:
                best = (layer, g)
        return best
