"""CUSUM on the loss: a sustained upward drift of the loss (reads the loss; silent without one).

Page's one-sided cumulative sum (Page 1954, "Continuous inspection schemes"):
with x_t = ln L_t standardised against the previous `window` steps,
z_t = (x_t - median) / max(1.4826 * MAD, `min_sigma`), the statistic
S_t = max(0, S_{t-1} + z_t - `k`) accumulates evidence of an upward shift and
forgets downward moves (a healthy loss falls). An alarm when S_t > `h`. The
reference window is robust (median and MAD; Hampel 1974), and `min_sigma`
(relative: 0.01 = 1% of the loss) keeps a loss that barely moves from
turning a tiny wobble into many sigmas. S restarts from 0 after an alarm.
"""

from __future__ import annotations

import math
from collections import deque

from gradvet.monitor.alert import LOSS_RISING, Finding
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.window import MAD_TO_SIGMA, mad, median

WINDOW = 32
# k: the reference value, half the shift (in sigmas) detected fastest (Page 1954): 1 for a shift of
# 2 sigmas. h = 20: no alarm in the 120 healthy runs of the benchmark's tuning corpus (seeds 0-15;
# h = 15 fired in two warm-ups to 0.1, late in training; h = 10 in one more SGD run, k = 0.5 in two
# more); on a loss with 2% noise, one rising 5% per step is caught 4-5 steps in, one doubling every
# 6 steps 3 steps in (three seeds each).
K = 1.0
H = 20.0
MIN_SIGMA = 0.01


class LossCusum:
    name = "loss_cusum"

    def __init__(self, window: int = WINDOW, k: float = K, h: float = H, min_sigma: float = MIN_SIGMA):
        self.window, self.k, self.h, self.min_sigma = window, k, h, min_sigma
        self._log: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._since: int | None = None

    def update(self, signals: StepSignals) -> list[Finding]:
        loss = signals.loss
        if loss is None or not math.isfinite(loss) or loss <= 0:
            return []
        x = math.log(loss)
        found: list[Finding] = []
        if len(self._log) >= self.window // 2:
            m = median(self._log)
            sigma = max(MAD_TO_SIGMA * mad(self._log, m), self.min_sigma)
            self._sum = max(0.0, self._sum + (x - m) / sigma - self.k)
            if self._sum == 0.0:
                self._since = None
            elif self._since is None:
                self._since = signals.step
            if self._sum > self.h:
                found.append(Finding(LOSS_RISING, None,
                                     f"the loss has been rising since step {self._since}: {loss:.4g} against a "
                                     f"median of {math.exp(m):.4g} over the previous {len(self._log)} steps "
                                     f"(CUSUM {self._sum:.3g} > {self.h:g})", since=self._since, value=self._sum))
                self._sum, self._since = 0.0, None
        self._log.append(x)
        return found
