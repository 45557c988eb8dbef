"""The likely remedy of an alert, in one sentence, from the run's own numbers.

- A clip value taken from the observed norms: the 90th percentile of the
  gradient norms of healthy steps (steps at least `quiet` steps away from any
  finding), as AutoClip takes a percentile of the norm history (Seetharaman et
  al. 2020, "AutoClip: adaptive gradient clipping"); a high percentile, so
  clipping leaves nine in ten healthy steps untouched and stops an explosion.
- A learning rate ten times lower (the update ratio scales with it; exactly so for SGD).
- At the first steps, the initialisation or a warm-up (Goyal et al. 2017): there
  is no healthy history yet, and a step-0 explosion comes from the starting weights.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from gradvet.monitor.alert import EXPLODING, LOSS_RISING, NONFINITE, SPIKE, STALL, UNSTABLE, VANISHING, Finding

CLIP_PERCENTILE = 90
MIN_HEALTHY = 10  # healthy steps needed before a clip value is quoted
EARLY_STEPS = 10  # alerts this early point at the initialisation and at warm-up


def clip_value(healthy_norms: Sequence[float]) -> float | None:
    """The CLIP_PERCENTILE-th percentile of the healthy steps' gradient norms, or None with too few."""
    if len(healthy_norms) < MIN_HEALTHY:
        return None
    return statistics.quantiles(healthy_norms, n=100, method="inclusive")[CLIP_PERCENTILE - 1]


def remedy(finding: Finding, step: int, lr: float | None, healthy_norms: Sequence[float]) -> str:
    clip = clip_value(healthy_norms)
    clip_text = (f"clip the gradient norm at {clip:.3g} (the {CLIP_PERCENTILE}th percentile of {len(healthy_norms)} "
                 f"healthy steps' norms)" if clip is not None else None)
    lower = f"lower the learning rate from {lr:.3g} to {lr / 10:.3g}" if lr is not None else "lower the learning rate 10x"
    if finding.kind == UNSTABLE:
        return f"{lower[0].upper()}{lower[1:]} (or warm it up from there), and clip the gradient norm as a safety net."
    if finding.kind in (EXPLODING, SPIKE, LOSS_RISING):
        if step < EARLY_STEPS and clip_text is None:
            return (f"At step {step} this comes from the starting point: use a scaled initialisation (He for ReLU, "
                    f"Xavier for tanh, orthogonal for recurrent weights), {lower}, or warm the learning rate up over "
                    "the first few hundred steps.")
        return f"{(clip_text or 'Clip the gradient norm').capitalize()} or {lower}."
    if finding.kind == NONFINITE:
        return ("The weights or the loss are lost from this step: restart from an earlier checkpoint and "
                + (f"{clip_text} or {lower}." if clip_text else f"clip the gradient norm or {lower}."))
    if finding.kind == VANISHING:
        return (f"{finding.layer} no longer learns: look for dead or saturated units there (gradvet diagnose), and "
                "consider a non-saturating activation, residual connections or normalisation.")
    if finding.kind == STALL:
        raise_lr = f"try a learning rate above {lr:.3g}, " if lr is not None else "try a larger learning rate, "
        return f"Nothing is being learnt: {raise_lr}check the labels and the loss, and look for vanishing gradients (gradvet diagnose)."
    return "Look at this step's gradients with gradvet diagnose."
