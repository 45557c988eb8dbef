"""Update ratio against a ceiling: ||W_after - W_before|| / ||W_before|| per layer.

About 1e-3 is healthy (Karpathy, CS231n notes, "Neural Networks Part 3": "the
ratio of the updates to the values ... should be somewhere around 1e-3"); a
ratio r means one optimiser step rewrites the fraction r of the layer. A step
whose largest ratio over layers exceeds `ceiling` = 1 changed a layer by more
than its whole size. Healthy runs stay below (the largest measured in the
benchmark's healthy runs is printed with its table; plain SGD at twice a sane
learning rate reaches 0.6 in its first steps and survives, so a lower ceiling
would flag it). Sustained large ratios with a loss that does not fall are
`Overshoot`'s to judge. Read on sampled steps only (see `gradvet.monitor.updates`), so it is the one
detector that can speak at step 0, before any history exists: an N(0, 1)
initialised deep net or a learning rate far too large shows here first.
"""

from __future__ import annotations

import math

from gradvet.monitor.alert import EXPLODING, Finding
from gradvet.monitor.signals import StepSignals

CEILING = 1.0


class UpdateRatioCeiling:
    name = "update_ratio"

    def __init__(self, ceiling: float = CEILING):
        self.ceiling = ceiling

    def update(self, signals: StepSignals) -> list[Finding]:
        if not signals.update_ratios:
            return []
        ratios = {layer: (r if not math.isnan(r) else math.inf) for layer, r in signals.update_ratios.items()}
        layer, ratio = max(ratios.items(), key=lambda kv: kv[1])
        if not ratio > self.ceiling:
            return []
        lr = f" at learning rate {signals.lr:.3g}" if signals.lr is not None else ""
        more = sum(r > self.ceiling for r in ratios.values()) - 1
        others = f"; {more} more layers above {self.ceiling:g}" if more else ""
        return [Finding(EXPLODING, layer,
                        f"one optimiser step{lr} changed {layer} by {ratio:.3g} times its size "
                        f"(||dW||/||W||, healthy about 1e-3{others})", value=ratio)]
