"""Shrinkage functions, and activations outside the three classic families:
linear, radial, periodic, polynomial and adaptive shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradvet.activations.core import Entry, Param

_lambd = Param("lambd", 0.5, 0.0, 100.0, doc="half-width of the zero band (PyTorch's name)")


def _bent_identity(x):
    return (torch.sqrt(x * x + 1) - 1) / 2 + x


def _bent_identity_grad(x):
    return x / (2 * torch.sqrt(x * x + 1)) + 1


def _softexponential(x, alpha):
    return torch.expm1(alpha * x) / alpha + alpha


SHRINK = [
    Entry(
        "hardshrink", "shrink", "where(abs(x) > lambd, x, 0)",
        fn=lambda x, lambd: F.hardshrink(x, lambd),
        grad=lambda x, lambd: (x.abs() > lambd).to(x.dtype),
        params=(_lambd,),
        aliases=("hard_shrink", "hard_threshold"),
        pros=("sparse codes: small inputs become exactly 0",),
        cons=("discontinuous at +-lambd; dead inside the band",),
        paper="Donoho & Johnstone, Ideal spatial adaptation by wavelet shrinkage",
        year=1994, module=lambda lambd: nn.Hardshrink(lambd),
    ),
    Entry(
        "softshrink", "shrink", "where(x > lambd, x - lambd, where(x < -lambd, x + lambd, 0))",
        fn=lambda x, lambd: F.softshrink(x, lambd),
        grad=lambda x, lambd: (x.abs() > lambd).to(x.dtype),
        params=(_lambd,),
        aliases=("soft_shrink", "soft_threshold"),
        pros=("the proximal map of the L1 norm: continuous sparsifier (ISTA, LISTA)",),
        cons=("dead inside the band [-lambd, lambd]",),
        paper="Donoho, De-noising by soft-thresholding",
        year=1995, module=lambda lambd: nn.Softshrink(lambd),
    ),
    Entry(
        "tanhshrink", "shrink", "x - tanh(x)",
        fn=F.tanhshrink,
        grad=lambda x: torch.tanh(x) ** 2,
        aliases=("tanh_shrink",),
        pros=("smooth shrinkage: flat near 0, slope -> 1 far out",),
        cons=("f'(0) = 0 and f' < 1 near 0: vanishes for small inputs",),
        paper="(PyTorch's Tanhshrink; smooth shrinkage in sparse coding)",
        year=None, module=nn.Tanhshrink,
    ),
]

OTHER = [
    Entry(
        "identity", "other", "x",
        fn=lambda x: x.clone(),
        grad=torch.ones_like,
        aliases=("linear", "none"),
        pros=("f' = 1: no vanishing from the activation",),
        cons=("a stack of linear layers is one linear map: no expressive power from depth",),
        paper="(linear unit)", year=None, module=nn.Identity,
    ),
    Entry(
        "gaussian", "other", "exp(-x**2)",
        fn=lambda x: torch.exp(-x * x),
        grad=lambda x: -2 * x * torch.exp(-x * x),
        aliases=("gauss", "rbf"),
        pros=("radial bump: local response, as in RBF networks",),
        cons=("f' -> 0 on both sides and f'(0) = 0; not monotonic",),
        paper="Broomhead & Lowe, Radial basis functions, multi-variable functional interpolation",
        year=1988,
    ),
    Entry(
        "sinusoid", "other", "sin(x)",
        fn=torch.sin, grad=torch.cos,
        aliases=("sin", "sine", "siren"),
        pros=("periodic: represents signals and their derivatives (SIREN)",),
        cons=("not monotonic; needs a special init (SIREN's) to train deep",),
        paper="Sitzmann et al., Implicit neural representations with periodic activation functions",
        year=2020,
    ),
    Entry(
        "snake", "other", "x + sin(a*x)**2/a",
        fn=lambda x, a: x + torch.sin(a * x) ** 2 / a,
        grad=lambda x, a: 1 + torch.sin(2 * a * x),
        params=(Param("a", 1.0, 0.0, 100.0, open_low=True, doc="frequency"),),
        aliases=(),
        pros=("monotone trend plus periodic ripple: extrapolates periodic data",),
        cons=("f' touches 0 periodically",),
        paper="Ziyin, Hartwig & Ueda, Neural networks fail to learn periodic functions and how to fix it",
        year=2020,
    ),
    Entry(
        "cube", "other", "x**3",
        fn=lambda x: x**3,
        grad=lambda x: 3 * x * x,
        aliases=("cubic",),
        pros=("captures three-way feature products (Chen & Manning's parser)",),
        cons=("f'(0) = 0 and f' = 3x^2 unbounded: vanishes near 0, explodes far out",),
        paper="Chen & Manning, A fast and accurate dependency parser using neural networks",
        year=2014,
    ),
    Entry(
        "abs", "other", "abs(x)",
        fn=torch.abs, grad=torch.sign,
        aliases=("absolute", "absolute_value"),
        pros=("|f'| = 1 everywhere: no vanishing; rectification without dead units",),
        cons=("not monotonic", "kink at 0"),
        paper="Jarrett, Kavukcuoglu, Ranzato & LeCun, What is the best multi-stage architecture for object recognition?",
        year=2009,
    ),
    Entry(
        "gcu", "other", "x*cos(x)",
        fn=lambda x: x * torch.cos(x),
        grad=lambda x: torch.cos(x) - x * torch.sin(x),
        aliases=("growing_cosine_unit",),
        pros=("oscillatory: a single neuron can learn XOR",),
        cons=("not monotonic, f' unbounded",),
        paper="Noel et al., Growing cosine unit",
        year=2021,
    ),
    Entry(
        "bent_identity", "other", "(sqrt(x**2 + 1) - 1)/2 + x",
        fn=_bent_identity, grad=_bent_identity_grad,
        aliases=("bent",),
        pros=("smooth, monotone, unbounded both ways; f' in (1/2, 3/2) never vanishes",),
        cons=("nearly linear: little non-linearity per layer",),
        paper="(folklore; listed in Wikipedia's table of activation functions)",
        year=None,
    ),
    Entry(
        "softexponential", "other", "(exp(alpha*x) - 1)/alpha + alpha",
        fn=_softexponential,
        grad=lambda x, alpha: torch.exp(alpha * x),
        params=(Param("alpha", 0.5, 0.0, 1.0, open_low=True,
                      doc="alpha > 0: exponential branch (alpha = 0 is the identity, alpha < 0 a log branch with a restricted domain)"),),
        aliases=("soft_exponential",),
        pros=("a learnable alpha interpolates logarithmic, linear and exponential units",),
        cons=("f' = exp(alpha x) grows without bound: explodes for large inputs",),
        paper="Godfrey & Gashler, A continuum among logarithmic, linear, and exponential functions",
        year=2015,
    ),
    Entry(
        "lisht", "other", "x*tanh(x)",
        fn=lambda x: x * torch.tanh(x),
        grad=lambda x: torch.tanh(x) + x * (1 - torch.tanh(x) ** 2),
        aliases=("linearly_scaled_tanh",),
        pros=("even, unbounded: no saturation for large |x|",),
        cons=("not monotonic; negative inputs give positive outputs",),
        paper="Roy et al., LiSHT: non-parametric linearly scaled hyperbolic tangent activation function",
        year=2019,
    ),
]

ENTRIES = SHRINK + OTHER
