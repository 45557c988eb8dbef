"""The sigmoid family: S-shaped functions onto (0, 1) and their relatives.

Each entry gives f in torch and f' in closed form. sigma'(x) = sigma(1 - sigma)
<= 1/4 is the factor behind the vanishing gradient in deep sigmoid nets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradvet.activations.core import Entry, magnitude

sigma = torch.sigmoid


class _Step(torch.autograd.Function):
    """Heaviside step with the gradient it really has: 0 (so a net built with
    it still back-propagates, zeros, instead of failing for want of a graph)."""

    @staticmethod
    def forward(ctx, x):
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return torch.zeros_like(grad_output)


def _dsilu(x):
    s = sigma(x)
    return s * (1 + x * (1 - s))


def _dsilu_grad(x):
    s = sigma(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


ENTRIES = [
    Entry(
        "sigmoid", "sigmoid", "sigmoid(x)",
        fn=sigma,
        grad=lambda x: sigma(x) * (1 - sigma(x)),
        aliases=("logistic", "sigm"),
        pros=("smooth, output in (0, 1): reads as a probability",
              "the right choice for a binary output unit"),
        cons=("f' <= 1/4: the gradient shrinks by at least 4x per layer, so deep sigmoid nets vanish",
              "saturates on both sides", "not zero-centred (E[f(z)] = 1/2)"),
        paper="Rumelhart, Hinton & Williams, Learning representations by back-propagating errors",
        year=1986, module=nn.Sigmoid,
    ),
    Entry(
        "hard_sigmoid", "sigmoid", "clip(x/6 + 1/2, 0, 1)",
        fn=lambda x: (x / 6 + 0.5).clamp(0, 1),
        grad=lambda x: ((x > -3) & (x < 3)).to(x.dtype) / 6,
        aliases=("hardsigmoid",),
        pros=("piecewise linear: cheap, no exp", "PyTorch's definition relu6(x + 3)/6"),
        # fn is written out: F.hardsigmoid's float64 backward uses 1/6 rounded to float32.
        cons=("f' = 1/6 inside [-3, 3] and exactly 0 outside: dead beyond the corners",),
        paper="Howard et al., Searching for MobileNetV3 (this form); Courbariaux et al., BinaryConnect",
        year=2019, module=nn.Hardsigmoid,
    ),
    Entry(
        "log_sigmoid", "sigmoid", "-softplus(-x)",
        fn=F.logsigmoid,
        grad=lambda x: sigma(-x),
        aliases=("logsigmoid",),
        pros=("log of the sigmoid computed stably; f' = sigma(-x) never exactly 0",),
        cons=("unbounded below, output always negative", "saturates for x > 0"),
        paper="(the logarithm of the logistic function; used in log-likelihoods)",
        year=None, module=nn.LogSigmoid,
    ),
    Entry(
        "bipolar_sigmoid", "sigmoid", "(1 - exp(-x))/(1 + exp(-x))",
        fn=lambda x: torch.tanh(x / 2),
        grad=lambda x: (1 - torch.tanh(x / 2) ** 2) / 2,
        aliases=("bipolar", "bipolar_logistic"),
        pros=("the sigmoid stretched onto (-1, 1): zero-centred",),
        cons=("equals tanh(x/2): f' <= 1/2, so it still vanishes with depth",
              "saturates on both sides"),
        paper="(2 sigma(x) - 1; classic neural-network texts)",
        year=None,
    ),
    Entry(
        "binary_step", "sigmoid", "where(x >= 0, 1, 0)",
        fn=_Step.apply,
        grad=torch.zeros_like,
        aliases=("step", "heaviside", "threshold_unit"),
        pros=("the perceptron's unit: a clean on/off decision",),
        cons=("f' = 0 everywhere it exists: no gradient at all, gradient descent cannot train it",),
        paper="McCulloch & Pitts, A logical calculus of the ideas immanent in nervous activity",
        year=1943,
    ),
    Entry(
        "elliott", "sigmoid", "x/(2*(1 + abs(x))) + 1/2",
        fn=lambda x: 0.5 * x / (1 + magnitude(x)) + 0.5,
        grad=lambda x: 0.5 / (1 + magnitude(x)) ** 2,
        aliases=("elliott_sigmoid", "elliot"),
        pros=("sigmoid-shaped with no exp: cheap", "polynomial tails: saturates slowly"),
        cons=("f' <= 1/2 and not zero-centred",),
        paper="Elliott, A better activation function for artificial neural networks",
        year=1993,
    ),
    Entry(
        "dsilu", "sigmoid", "sigmoid(x)*(1 + x*(1 - sigmoid(x)))",
        fn=_dsilu, grad=_dsilu_grad,
        aliases=("dsil", "silu_derivative"),
        pros=("the derivative of SiLU used as an activation: sigmoid-like with a small over/undershoot",),
        cons=("non-monotonic; saturates on both sides",),
        paper="Elfwing, Uchibe & Doya, Sigmoid-weighted linear units for neural network function approximation in RL",
        year=2017,
    ),
    Entry(
        "cloglog", "sigmoid", "1 - exp(-exp(x))",
        fn=lambda x: -torch.expm1(-torch.exp(x)),
        grad=lambda x: torch.exp(x - torch.exp(x)),
        aliases=("complementary_log_log", "gompertz"),
        pros=("asymmetric sigmoid onto (0, 1): the inverse link of the complementary log-log model",),
        cons=("max f' = 1/e, saturates on both sides (doubly exponentially on the right)",),
        paper="(generalised linear models, complementary log-log link)",
        year=None,
    ),
]
