"""Multi-layer perceptrons with every architectural remedy as a switch.

Layer names are stable because every report names layers by them:
`hidden.0.linear`, `hidden.0.norm`, `hidden.0.act`, ..., `out`.
"""

from __future__ import annotations

import torch
from torch import nn

from gradvet.activations import Activation
from gradvet.activations import activation as get_activation
from gradvet.base import validation
from gradvet.base.rng import seeded

NORMS = (None, "batch", "layer")


class HiddenBlock(nn.Module):
    """linear -> [norm] -> activation, plus x (identity skip) when `residual`.

    The skip needs equal widths, so the first block (input -> width) has none
    unless the input already has the hidden width (He et al. 2016 use a
    projection there; gradvet keeps the first layer plain instead).
    """

    def __init__(self, in_features: int, width: int, act: Activation, norm: str | None, residual: bool):
        super().__init__()
        self.linear = nn.Linear(in_features, width)
        self.norm: nn.Module | None
        if norm == "batch":
            self.norm = nn.BatchNorm1d(width)
        elif norm == "layer":
            self.norm = nn.LayerNorm(width)
        else:
            self.norm = None
        self.act = act.module()
        self.residual = residual and in_features == width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        if self.norm is not None:
            z = self.norm(z)
        h = self.act(z)
        return x + h if self.residual else h


class MLP(nn.Module):
    """`depth` hidden blocks of `width` units and a linear read-out `out`."""

    def __init__(self, in_features: int, out_features: int, depth: int, width: int, act: Activation,
                 norm: str | None = None, residual: bool = False):
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(
            HiddenBlock(sizes[i], width, act, norm, residual) for i in range(depth)
        )
        self.out = nn.Linear(width, out_features)
        self.activation = act

    def features(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Output of the first `upto` hidden blocks (all when None)."""
        for block in self.hidden[:upto]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def mlp(in_features: int, out_features: int, depth: int, width: int, activation: str | Activation = "relu",
        init: str = "he", norm: str | None = None, residual: bool = False, data: torch.Tensor | None = None,
        seed: int | None = None, **activation_params) -> MLP:
    """An initialised MLP. `activation` is anything `gradvet.activation` accepts; `init` one of
    `gradvet.models.init.SCHEMES` (`lsuv` needs a `data` batch). With a `seed` the weights come
    from torch's global generator seeded with it, which is then put back as it was
    (`gradvet.base.rng.seeded`); without one they are drawn from the caller's stream."""
    from gradvet.models.init import initialise

    validation.choice("norm", norm, NORMS)
    for name, value in (("in_features", in_features), ("out_features", out_features), ("depth", depth),
                        ("width", width)):
        validation.whole_number(name, value, 1)
    act = get_activation(activation, **activation_params)
    with seeded(seed):
        model = MLP(in_features, out_features, depth, width, act, norm, residual)
        initialise(model, init, data=data, activation=act)
    return model
