"""Update ratio against a ceiling: ||W_after - W_before|| / ||W_before|| per layer.

About 1e-3 is healthy (Karpathy, CS231n notes, "Neural Networks Part 3": "the
ratio of the updates to the values ... should be somewhere around 1e-3"); a
ratio of CEILING means one optimiser step rewrites that fraction of the layer.
Read on sampled steps only (see `gradvet.monitor.updates`), so it is the one
detector that can speak at step 0, before any history exists: an N(0, 1)
initialised deep net or a learning rate far too large shows here first.
"""

from __future__ import annotations

import math

from gradvet.monitor.alert import EXPLODING, Finding
from gradvet.monitor.signals import StepSignals

CEILING = 0.5  # measured: see benchmarks/early_warning.py (healthy runs stay below HEALTHY_MAX)


class UpdateRatioCeiling:
    name = "update_ratio"

    def __init__(self, ceiling: float = CEILING):
        self.ceiling = ceiling

    def update(self, signals: StepSignals) -> list[Finding]:
        if not signals.update_ratios:
            return []
        over = {layer: r for layer, r in signals.update_ratios.items() if not r <= self.ceiling}  # NaN counts
        if not over:
            return []
        layer, ratio = max(over.items(), key=lambda kv: kv[1] if math.isfinite(kv[1]) else math.inf)
        lr = f" at learning rate {signals.lr:g}" if signals.lr is not None else ""
        more = f"; {len(over) - 1} more layers above {self.ceiling:g}" if len(over) > 1 else ""
        return [Finding(EXPLODING, layer,
                        f"one optimiser step{lr} changed {layer} by {ratio:.3g} times its size "
                        f"(||dW||/||W||, healthy about 1e-3{more})", value=ratio)]
