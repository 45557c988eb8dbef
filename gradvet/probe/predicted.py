"""The backward profile mean-field theory predicts for a model, to set beside the measured one.

Theory (`gradvet.theory.predict_profile`) covers a plain fully connected chain
Linear -> f -> Linear -> f -> ... -> Linear with one activation f. For such a
model the inputs of the prediction are read off the model itself:

- sw2_l = n_in * mean(W_l^2) and sb2_l = mean(b_l^2) of each hidden Linear
  (the second moments mean-field theory assumes: W ~ N(0, sw2/n_in), b ~ N(0, sb2));
- q0 = mean(x^2) over the batch, so that q^1 = sw2_1 q0 + sb2_1 is the first
  layer's pre-activation variance.

A model is accepted only when composing its Linear layers and activations in
order reproduces its own output on the batch (so hidden skips, norms or other
layers, which theory does not cover, give no prediction rather than a wrong one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradvet.activations import Activation
from gradvet.probe.layers import catalog_activation

SKIPPED = (nn.Dropout, nn.Identity, nn.Flatten)


@dataclass(frozen=True)
class Prediction:
    """Predicted delta_l / delta_L per hidden Linear layer (by module name), and what it used."""

    activation: str
    ratios: dict[str, float]
    sw2: list[float]
    sb2: list[float]
    q0: float

    @property
    def first_to_last(self) -> float:
        return next(iter(self.ratios.values()))


def _chain(model: nn.Module) -> tuple[list[tuple[str, nn.Linear]], Activation] | str:
    """The hidden Linear layers and the one activation of a plain chain, or why it is not one."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children()) and not isinstance(m, SKIPPED)]
    linears, acts = [], []
    for i, (name, module) in enumerate(leaves):
        expect_linear = i % 2 == 0
        if expect_linear and isinstance(module, nn.Linear):
            linears.append((name, module))
            continue
        act = None if expect_linear else catalog_activation(module)
        if act is None:
            return f"{name} ({type(module).__name__}) is not part of a Linear -> activation chain"
        acts.append(act)
    if len(linears) < 2 or len(acts) != len(linears) - 1:
        return "the model is not a chain of Linear layers with one activation between each pair"
    first = acts[0]
    if any(a.name != first.name or a.params != first.params for a in acts[1:]):
        return "the hidden layers use different activations"
    return linears[:-1], first


def _composed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, SKIPPED)]
    h = x.flatten(1)
    for module in leaves:
        h = module(h)
    return h


@torch.no_grad()
def predict_for(model: nn.Module, x: torch.Tensor) -> Prediction | str:
    """The mean-field prediction for `model` on the batch `x`, or one sentence saying why theory
    does not apply to it."""
    from gradvet.theory import predict_profile

    chain = _chain(model)
    if isinstance(chain, str):
        return chain
    hidden, act = chain
    if not all(bool(torch.isfinite(p).all()) for _, m in hidden for p in m.parameters()):
        return "the model's weights are not finite (the gradient exploded)"
    was_training = model.training
    model.eval()
    try:
        same = torch.allclose(_composed(model, x), model(x), rtol=1e-4, atol=1e-6)
    except (RuntimeError, ValueError):
        same = False
    finally:
        model.train(was_training)
    if not same:
        return "the model's forward pass is not the plain chain of its layers (skips or other operations)"
    sw2 = [float(m.weight.double().pow(2).mean()) * m.in_features for _, m in hidden]
    sb2 = [float(m.bias.double().pow(2).mean()) if m.bias is not None else 0.0 for _, m in hidden]
    q0 = float(x.double().pow(2).mean())
    if any(not (v > 0) or not math.isfinite(v) for v in sw2) or not all(math.isfinite(v) for v in sb2 + [q0]):
        return "a hidden layer has all-zero or non-finite weights, or the input is not finite"
    profile = predict_profile(act, len(hidden), sw2, sb2, q0=q0)
    return Prediction(act.name, {name: r for (name, _), r in zip(hidden, profile)}, sw2, sb2, q0)
