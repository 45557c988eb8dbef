"""The matching init of every catalog activation (gradvet.activations.matching_init) against the
documented table, typed here by hand, and the one pairing the old copies disagreed on (softplus:
He or Xavier?) against a measurement on wide random nets built here, not by gradvet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gradvet
import gradvet.theory
from gradvet.activations import activation, names
from gradvet.activations.matching_init import matching_init

# The catalog by family, as the docs list it: ReLU family -> he (selu -> lecun), tanh and sigmoid
# families -> xavier, shrink and other -> none documented.
RELU_FAMILY = ("celu", "elish", "elu", "gelu", "gelu_tanh", "hard_elish", "hardswish", "isrlu", "leaky_relu", "mish",
               "prelu", "relu", "relu6", "rrelu", "serf", "shifted_softplus", "silu", "smelu", "softplus",
               "squared_relu", "srelu", "swish", "tanh_exp")
TANH_FAMILY = ("arctan", "erf", "hardtanh", "isru", "lecun_tanh", "penalized_tanh", "softsign", "sqnl", "tanh")
SIGMOID_FAMILY = ("binary_step", "bipolar_sigmoid", "cloglog", "dsilu", "elliott", "hard_sigmoid", "log_sigmoid",
                  "sigmoid")
NO_PAIRING = ("hardshrink", "softshrink", "tanhshrink", "abs", "bent_identity", "cube", "gaussian", "gcu",
              "identity", "lisht", "sinusoid", "snake", "softexponential")
DOCUMENTED = {**{n: "he" for n in RELU_FAMILY}, "selu": "lecun", **{n: "xavier" for n in TANH_FAMILY + SIGMOID_FAMILY},
              **{n: None for n in NO_PAIRING}}


def test_the_table_covers_the_whole_catalog():
    assert sorted(DOCUMENTED) == sorted(names())  # a new entry needs its pairing documented here


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_matching_init_of_every_catalog_activation_is_the_documented_one(name):
    assert matching_init(activation(name)) == DOCUMENTED[name]


def test_formulas_and_registered_activations_have_no_documented_pairing():
    assert matching_init(activation("max(x, 0)")) is None  # relu as a formula: not the catalog's
    gradvet.register("my_relu_like", torch.relu, family="relu")
    try:
        assert matching_init(activation("my_relu_like")) is None
    finally:
        gradvet.activations.unregister("my_relu_like")


def wide_net_ratio(name: str, sw2: float, depth: int = 16, width: int = 256, batch: int = 256) -> float:
    """delta_1/delta_L, the backward signal at the first hidden pre-activation over the last, by
    float64 autograd through a plain net built here: W ~ N(0, sw2/width), b = 0, inputs N(0, 1),
    a Gaussian read-out of 10 units and the sum of its outputs as the loss."""
    generator = torch.Generator().manual_seed(0)
    f = activation(name).fn
    h = torch.randn(batch, width, generator=generator, dtype=torch.float64)
    zs = []
    for _ in range(depth):
        w = (torch.randn(width, width, generator=generator, dtype=torch.float64) * math.sqrt(sw2 / width)).requires_grad_()
        z = h @ w.T
        z.retain_grad()
        zs.append(z)
        h = f(z)
    out = h @ torch.randn(10, width, generator=generator, dtype=torch.float64).T / math.sqrt(width)
    out.sum().backward()
    return float(zs[0].grad.norm() / zs[-1].grad.norm())


def test_softplus_takes_he_measured():
    """softplus' = sigmoid: E[sigmoid(z)^2] = 0.293 for z ~ N(0, 1) (quadrature here), well below
    1, so Xavier's sw2 = 1 shrinks the signal at every layer, while He's 2 keeps it (its edge of
    chaos): at depth 16, Xavier loses more than three decades and He less than one."""
    z, w = np.polynomial.hermite_e.hermegauss(120)
    e_grad_sq = float(np.sum(w * (1 / (1 + np.exp(-z))) ** 2) / np.sum(w))
    assert e_grad_sq == pytest.approx(0.2934, abs=1e-4)
    he, xavier = wide_net_ratio("softplus", 2.0), wide_net_ratio("softplus", 1.0)
    assert abs(math.log10(he)) < 1 < 3 < abs(math.log10(xavier))
    assert gradvet.theory.critical_sw2("softplus") == pytest.approx(2.0, rel=1e-3)  # mean-field theory agrees
    assert matching_init(activation("softplus")) == "he"
