"""The tanh family: zero-centred S-shapes onto a bounded interval.

tanh'(0) = 1, so near the origin these pass the gradient unchanged, but they
saturate on both sides (f' -> 0), where the gradient vanishes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gradvet.activations.core import Entry, Param, magnitude

LECUN_A, LECUN_B = 1.7159, 2.0 / 3.0
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _penalized_tanh(x, a):
    t = torch.tanh(x)
    return torch.where(x > 0, t, a * t)


def _penalized_tanh_grad(x, a):
    t = torch.tanh(x)
    return torch.where(x > 0, torch.ones_like(x), a) * (1 - t * t)


def _sqnl(x):
    c = x.clamp(-2, 2)
    return c - c * magnitude(c) / 4


ENTRIES = [
    Entry(
        "tanh", "tanh", "tanh(x)",
        fn=torch.tanh,
        grad=lambda x: 1 - torch.tanh(x) ** 2,
        aliases=("hyperbolic_tangent",),
        pros=("zero-centred; f'(0) = 1, so near 0 it behaves like the identity",
              "better than sigmoid in hidden layers (LeCun et al. 1998)"),
        cons=("saturates on both sides: large pre-activations stop the gradient",),
        paper="LeCun, Bottou, Orr & Mueller, Efficient BackProp",
        year=1998, module=nn.Tanh,
    ),
    Entry(
        "hardtanh", "tanh", "clip(x, min_val, max_val)",
        fn=lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val),
        grad=lambda x, min_val, max_val: ((x > min_val) & (x < max_val)).to(x.dtype),
        params=(Param("min_val", -1.0, -100.0, 100.0, doc="lower clip"),
                Param("max_val", 1.0, -100.0, 100.0, doc="upper clip")),
        aliases=("hard_tanh",),
        pros=("piecewise linear tanh: cheap, f' = 1 inside the clip range",),
        cons=("f' = 0 outside [min_val, max_val]: dead beyond the corners",),
        paper="Collobert, Large scale machine learning (PhD thesis)",
        year=2004, module=nn.Hardtanh,
    ),
    Entry(
        "softsign", "tanh", "x/(1 + abs(x))",
        fn=F.softsign,
        grad=lambda x: 1 / (1 + magnitude(x)) ** 2,
        aliases=(),
        pros=("zero-centred, polynomial tails: saturates more gently than tanh (Glorot & Bengio 2010)",),
        cons=("still saturates; kink in f'' at 0",),
        paper="Bergstra et al., Quadratic polynomials learn better image features; Glorot & Bengio 2010",
        year=2009, module=nn.Softsign,
    ),
    Entry(
        "lecun_tanh", "tanh", "1.7159*tanh(2*x/3)",
        fn=lambda x: LECUN_A * torch.tanh(LECUN_B * x),
        grad=lambda x: LECUN_A * LECUN_B * (1 - torch.tanh(LECUN_B * x) ** 2),
        aliases=("scaled_tanh", "lecun"),
        pros=("scaled so that f(+-1) = +-1 and unit-variance inputs keep roughly unit variance",),
        cons=("saturates on both sides like tanh",),
        paper="LeCun, Bottou, Orr & Mueller, Efficient BackProp",
        year=1998,
    ),
    Entry(
        "penalized_tanh", "tanh", "where(x > 0, tanh(x), a*tanh(x))",
        fn=_penalized_tanh, grad=_penalized_tanh_grad,
        params=(Param("a", 0.25, 0.0, 1.0, doc="slope factor for x <= 0"),),
        aliases=("ptanh",),
        pros=("tanh with the negative side damped: behaves like a leaky tanh, reported strong in NLP",),
        cons=("saturates on both sides", "kink at 0"),
        paper="Xu, Huang & Li, Revise saturated activation functions",
        year=2016,
    ),
    Entry(
        "isru", "tanh", "x/sqrt(1 + alpha*x**2)",
        fn=lambda x, alpha: x * torch.rsqrt(1 + alpha * x * x),
        grad=lambda x, alpha: torch.rsqrt(1 + alpha * x * x) ** 3,
        params=(Param("alpha", 1.0, 0.0, 100.0, open_low=True, doc="range is +-1/sqrt(alpha)"),),
        aliases=("inverse_square_root_unit",),
        pros=("tanh-like with no exp: cheap", "range +-1/sqrt(alpha) tunable"),
        cons=("saturates on both sides",),
        paper="Carlile et al., Improving deep learning by inverse square root linear units (ISRLUs)",
        year=2017,
    ),
    Entry(
        "arctan", "tanh", "atan(x)",
        fn=torch.atan,
        grad=lambda x: 1 / (1 + x * x),
        aliases=("atan", "arctangent"),
        pros=("zero-centred, f'(0) = 1, polynomial (slow) saturation",),
        cons=("saturates on both sides",),
        paper="(classic; e.g. Kamruzzaman et al. comparisons of sigmoidal activations)",
        year=None,
    ),
    Entry(
        "erf", "tanh", "erf(x)",
        fn=torch.erf,
        grad=lambda x: _TWO_OVER_SQRT_PI * torch.exp(-x * x),
        aliases=("error_function",),
        pros=("zero-centred S-shape whose Gaussian moments have closed forms (mean-field theory)",),
        cons=("saturates fast (Gaussian tails of f')",),
        paper="(used in Poole et al., Exponential expressivity in deep neural networks)",
        year=2016,
    ),
    Entry(
        "sqnl", "tanh", "where(x > 2, 1, where(x >= 0, x - x**2/4, where(x >= -2, x + x**2/4, -1)))",
        fn=_sqnl,
        grad=lambda x: 1 - magnitude(x.clamp(-2, 2)) / 2,
        aliases=("square_nonlinearity",),
        pros=("tanh-like from squares only: cheap", "f' continuous"),
        cons=("f' = 0 beyond |x| = 2: dead outside",),
        paper="Wuraola & Patel, SQNL: a new computationally efficient activation function",
        year=2018,
    ),
]
