"""Residual nets for the `residual` experiment: an MLP of residual blocks with the branch scale, a
zero-initialised branch output and Pre-LN as switches, and a stack of PyTorch's transformer layers
(Post-LN or Pre-LN) on token sequences.

Residual MLP block (`ResidualBlock`): h = x + s * W2 relu(W1 n(x) + b1) + s * b2, with n the identity
or a LayerNorm (Pre-LN: the branch reads a normalised copy, the stream is never normalised).
Initialisation, each layer for what follows it (He et al. 2015): W1 ~ N(0, 2/n) (a ReLU follows),
W2 ~ N(0, 1/m) (nothing follows: gain 1), biases 0. The branch then keeps the squared length of
what it reads, E||f(u)||^2 = ||u||^2, and of what it sends back, E||J_f^T g||^2 = ||g||^2 (G = 1; the
derivation is in `gradvet.experiments.residual_theory`).

`zero_init` sets W2 = 0 (and b2 = 0), so every block starts as the identity (Fixup's
zero-initialised last layer of each branch, Zhang, Dauphin & Ma 2019; SkipInit's alpha = 0, De &
Smith 2020, has the same start). `fixup` adds Fixup's other rule: the branch's other layers scaled
by L^(-1/(2m-2)), here (m = 2 layers) W1 by 1/sqrt(L). At init that changes nothing (W2 = 0), but it
bounds the first steps: with W2 = 0 every block sees the same dL/dh, so every W2 gets the same
gradient direction and the L branches move the stream together, about L times as far as one; W1
scaled by 1/sqrt(L) shrinks each branch's hidden activations, and with them its W2 gradient, so
that the sum over the L blocks stays O(1).

The stream enters through `embed` (W ~ N(0, 1/n_in): the entries keep the inputs' variance) and
leaves through `out` (same init), after a LayerNorm `norm_out` in the Pre-LN variant (as GPT-2's
ln_f). The blocks are the items of the ModuleList `blocks`, which the Probe finds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradvet.base import validation
from gradvet.base.rng import seeded

NORMS = (None, "pre")


class ResidualBlock(nn.Module):
    """h = x + scale * f(x), f = fc2 . relu . fc1 . norm (norm: identity, or LayerNorm for Pre-LN)."""

    def __init__(self, width: int, hidden: int, scale: float, norm: str | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(width) if norm == "pre" else nn.Identity()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, width)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.fc2(self.act(self.fc1(self.norm(x))))


class ResidualMLP(nn.Module):
    """embed -> `depth` ResidualBlocks of `width` -> [norm_out] -> out."""

    def __init__(self, in_features: int, out_features: int, depth: int, width: int, scale: float,
                 norm: str | None = None):
        super().__init__()
        self.embed = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, width, scale, norm) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width) if norm == "pre" else nn.Identity()
        self.out = nn.Linear(width, out_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The stream after the last block."""
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm_out(self.features(x)))


def _normal(layer: nn.Linear, variance_times_fan_in: float) -> None:
    """W ~ N(0, c / fan_in), b = 0."""
    nn.init.normal_(layer.weight, 0.0, math.sqrt(variance_times_fan_in / layer.in_features))
    nn.init.zeros_(layer.bias)


def residual_mlp(in_features: int, out_features: int, depth: int, width: int, scale: float = 1.0,
                 zero_init: bool = False, fixup: bool = False, norm: str | None = None,
                 seed: int | None = None) -> ResidualMLP:
    """An initialised ResidualMLP (see the module docstring; `fixup` implies `zero_init`). With a `seed`
    the weights come from torch's global generator seeded with it, then put back as it was
    (`gradvet.base.rng.seeded`)."""
    for name, value in (("in_features", in_features), ("out_features", out_features), ("depth", depth),
                        ("width", width)):
        validation.whole_number(name, value, 1)
    validation.choice("norm", norm, NORMS)
    validation.finite_number("scale", scale, low=0.0)
    with seeded(seed):
        model = ResidualMLP(in_features, out_features, depth, width, scale, norm)
        _normal(model.embed, 1.0)
        _normal(model.out, 1.0)
        for block in model.blocks:
            assert isinstance(block, ResidualBlock)
            _normal(block.fc1, 2.0 / depth if fixup else 2.0)
            _normal(block.fc2, 0.0 if zero_init or fixup else 1.0)
    return model


class TokenTransformer(nn.Module):
    """Token and position embeddings -> `depth` nn.TransformerEncoderLayer (Post-LN, or Pre-LN with
    `norm_first`) in the ModuleList `layers` -> [final LayerNorm, Pre-LN only] -> a linear read-out
    per position. No dropout; PyTorch's own initialisation of every layer (embeddings N(0, 1))."""

    def __init__(self, vocab: int, length: int, depth: int, d_model: int = 32, heads: int = 2,
                 feedforward: int = 64, norm_first: bool = False):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(length, d_model)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=0.0, batch_first=True,
                                       norm_first=norm_first)
            for _ in range(depth))
        self.norm_out = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.out = nn.Linear(d_model, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(batch, length) token ids -> (batch, vocab, length) logits (cross-entropy's layout)."""
        h = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        for layer in self.layers:
            h = layer(h)
        return self.out(self.norm_out(h)).transpose(1, 2)


def token_transformer(vocab: int, length: int, depth: int, d_model: int = 32, heads: int = 2,
                      feedforward: int = 64, norm_first: bool = False, seed: int | None = None) -> TokenTransformer:
    """An initialised TokenTransformer; `seed` as in `residual_mlp`."""
    for name, value in (("vocab", vocab), ("length", length), ("depth", depth), ("d_model", d_model),
                        ("heads", heads), ("feedforward", feedforward)):
        validation.whole_number(name, value, 1)
    if d_model % heads:
        raise validation.not_allowed("heads", heads, "a divisor of d_model = " + str(d_model))
    with seeded(seed):
        return TokenTransformer(vocab, length, depth, d_model, heads, feedforward, norm_first)
