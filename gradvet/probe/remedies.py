"""Remedies for a diagnosis, ranked for the case at hand, each tied to its evidence.

Vanishing: a non-saturating activation with its matching init (He et al. 2015),
an init matched to the activation, batch normalisation (Ioffe & Szegedy 2015),
residual connections (He et al. 2016), greedy layer-wise pre-training
(Hinton et al. 2006; Bengio et al. 2007), LSTM/GRU for recurrent nets
(Hochreiter & Schmidhuber 1997). Exploding: gradient-norm clipping at a
threshold read off the observed norms (Pascanu et al. 2013), a smaller init or
learning rate, weight decay, truncated BPTT for recurrent nets.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from gradvet.activations import activation
from gradvet.activations.matching_init import matching_init
from gradvet.base.formatting import short_number
from gradvet.base.stats import geometric_mean
from gradvet.probe.dead_units import DEAD_SPAN
from gradvet.probe.metrics.bias_grad_norm import BiasGradNorm
from gradvet.probe.metrics.saturated_fraction import SATURATION_LEVEL
from gradvet.probe.metrics.weight_grad_norm import WeightGradNorm
from gradvet.probe.thresholds import (
    DEEP,
    GROWING_WEIGHT_FACTOR,
    HALF_ACTIVATION_FACTOR,
    MEAN_DEAD,
    MEAN_SATURATED_SATURATING,
    SATURATED,
    SATURATING_FAMILIES,
    SHRINKING_WEIGHT_FACTOR,
    SMALL_ACTIVATION_FACTOR,
    WEAK_LAYER,
)
from gradvet.probe.trace import Trace


@dataclass
class Remedy:
    """One thing to do, and why, tied to the measured numbers."""

    action: str
    why: str


def _family(name: str | None) -> str | None:
    if not name:
        return None
    from gradvet.activations import activation

    try:
        return activation(name).family
    except ValueError:
        return None


def total_grad_norms(trace: Trace) -> list[float]:
    """Total gradient norm per recorded step: sqrt of the sum of squared weight and bias gradient norms."""
    per_step: dict[int, float] = {}
    for step, _, metric, value in trace.rows:
        if metric in (WeightGradNorm.name, BiasGradNorm.name):
            per_step[step] = per_step.get(step, 0.0) + value * value
    return [math.sqrt(v) for _, v in sorted(per_step.items())]


def suggest(d, trace: Trace, main_act: str | None, recurrent: bool) -> list[Remedy]:
    """The remedies for diagnosis `d` (a `probe.diagnosis.Diagnosis`), most promising first."""
    remedies: list[Remedy] = []
    family = _family(main_act)
    acts = [lay.activation_gain for lay in d.layers[:-1]]
    weights = [lay.weight_gain for lay in d.layers[:-1]]
    act_mean, weight_mean = geometric_mean(acts), geometric_mean(weights)
    depth = len(d.layers) + 1

    if d.verdict == "vanishing":
        if recurrent:
            remedies.append(Remedy("use an LSTM or GRU instead of a plain RNN",
                                   "their additive cell path carries the gradient across time steps where the plain "
                                   f"recurrence multiplies it by f'(a) W_hh at every step (ratio {short_number(d.ratio)})."))
        per_layer = act_mean * weight_mean if act_mean is not None and weight_mean is not None else None
        if family in SATURATING_FAMILIES or (act_mean is not None and act_mean < SMALL_ACTIVATION_FACTOR):
            remedies.append(Remedy("use relu (or leaky_relu / gelu) in the hidden layers, with init he",
                                   f"the activation factors average {short_number(act_mean)} per layer "
                                   f"({main_act or 'this activation'}' is small); relu' = 1 where active, and He init "
                                   "keeps the signal's scale."))
        elif (act_mean is not None and act_mean < HALF_ACTIVATION_FACTOR and per_layer is not None
              and per_layer < WEAK_LAYER):
            who = main_act or "the activation"
            remedies.append(Remedy("use init he (weights N(0, 2/n_in))",
                                   f"the activation factors average {short_number(act_mean)} per layer ({who} passes about "
                                   f"half the units) and the weight factors only {short_number(weight_mean)}: He init's "
                                   "factor sqrt(2) makes their product about 1."))
        elif weight_mean is not None and weight_mean < SHRINKING_WEIGHT_FACTOR:
            init = (matching_init(activation(main_act)) if family else None) or "he"
            remedies.append(Remedy(f"use init {init}, matched to {main_act or 'the activation'}",
                                   f"the weight factors average {short_number(weight_mean)} per layer and multiply to "
                                   f"{short_number(d.weight_factor)}: the weights shrink the backward signal at every layer."))
        remedies.append(Remedy("add batch normalisation after each hidden linear layer (before its activation)",
                               "it rescales every layer's pre-activations to unit variance, keeping f'(z) away from "
                               f"saturation and the weight factors near 1 (ratio now {short_number(d.ratio)})."))
        if depth > DEEP:
            remedies.append(Remedy("add residual connections around the hidden blocks",
                                   f"with {depth} layers an identity path lets the gradient skip the "
                                   "multiplicative chain (dL/dx = dL/dy (1 + df/dx))."))
        if family == "sigmoid" and not recurrent:
            remedies.append(Remedy("pre-train greedily layer by layer (autoencoders), then fine-tune",
                                   "the classic remedy for deep sigmoid nets: each layer starts from useful weights "
                                   "instead of waiting for a vanished gradient."))
    elif d.verdict == "exploding":
        norms = [v for v in total_grad_norms(trace) if math.isfinite(v)]
        if norms:
            threshold = statistics.median(norms)
            remedies.append(Remedy(f"clip the gradient norm at {threshold:.3g}",
                                   f"the median total gradient norm observed is {threshold:.3g} and the largest "
                                   f"{max(norms):.3g}; clipping at the median bounds the steps that blow up "
                                   "(Pascanu et al. 2013)."))
        else:
            remedies.append(Remedy("clip the gradient norm (e.g. at 1.0)",
                                   "every recorded gradient norm was NaN or Inf: no finite norm to read a threshold from."))
        if weight_mean is not None and weight_mean > GROWING_WEIGHT_FACTOR:
            remedies.append(Remedy("use a smaller init (xavier or he instead of N(0, 1)) or a smaller learning rate",
                                   f"the weight factors average {short_number(weight_mean)} per layer: each layer multiplies "
                                   "the backward signal."))
        else:
            remedies.append(Remedy("lower the learning rate",
                                   "large steps grow the weights until the backward signal overflows."))
        remedies.append(Remedy("add weight decay (e.g. 1e-4)", "it keeps the weights, and so the weight factors, small."))
        if recurrent:
            remedies.append(Remedy("truncate back-propagation through time (e.g. 20-50 steps)",
                                   "the recurrent product of W_hh factors grows with every step it spans."))
        remedies.append(Remedy("add batch normalisation after each hidden linear layer",
                               "it rescales each layer's pre-activations, breaking the chain of growing factors."))
    return remedies + unit_remedies(d, main_act)


def unit_remedies(d, main_act: str | None) -> list[Remedy]:
    """The remedies for units that pass no gradient, whatever the verdict: dead units, saturated ones."""
    remedies: list[Remedy] = []
    family = _family(main_act)
    mean_dead = d.layer_mean("persistent_dead_fraction") or 0.0
    mean_sat = d.layer_mean("saturated_fraction") or 0.0
    if mean_dead >= MEAN_DEAD:
        remedies.append(Remedy("use leaky_relu (or elu) and a smaller learning rate",
                               f"on average {mean_dead:.0%} of the units are dead: f'(z) = 0 for every sample on every "
                               f"recorded step over at least the last {DEAD_SPAN} training steps (to step {d.step}); "
                               "no gradient reaches their weights and they have not recovered in that time."))
    if d.verdict != "exploding" and (mean_sat >= SATURATED or (family in SATURATING_FAMILIES
                                                                and mean_sat >= MEAN_SATURATED_SATURATING)):
        remedies.append(Remedy("reduce the scale of the pre-activations (batch norm, or a smaller init)",
                               f"on average {mean_sat:.0%} of the units are saturated (|f'(z)| < "
                               f"{SATURATION_LEVEL:.0%} of its maximum)."))
    return remedies
