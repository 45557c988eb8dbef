"""Non-finite values: a NaN or Inf in the gradient norm of any layer, or in the loss.

Nothing to estimate: a single non-finite value is reported on the step it
appears (the norms are float64-rechecked on the CPU, so a huge but finite
gradient is not mistaken for one; see `gradvet.monitor.gradients`). The layer
named is the first in model order whose gradient norm is not finite.
"""

from __future__ import annotations

import math

from gradvet.monitor.alert import NONFINITE, Finding
from gradvet.monitor.signals import StepSignals


class NonFiniteValues:
    name = "nonfinite"

    def update(self, signals: StepSignals) -> list[Finding]:
        found: list[Finding] = []
        if signals.has_gradient and not math.isfinite(signals.grad_norm):
            bad = [layer for layer, v in signals.layer_grad_norms.items() if not math.isfinite(v)]
            first = bad[0] if bad else None
            found.append(Finding(NONFINITE, first,
                                 f"the gradient norm is {signals.grad_norm:g}, first non-finite in {first} "
                                 f"({len(bad)} of {len(signals.layer_grad_norms)} layers)", value=signals.grad_norm))
        if signals.loss is not None and not math.isfinite(signals.loss):
            found.append(Finding(NONFINITE, None, f"the loss is {signals.loss:g}", value=signals.loss))
        return found
