"""Look-up by name, alias and formula; parameters; registering a user's own activation."""

from __future__ import annotations

import math

import pytest
import torch

import gradvet
from gradvet import GradvetError
from gradvet.activations import names, unregister


@pytest.mark.parametrize("spelling,canonical", [
    ("ReLU", "relu"), ("Leaky-ReLU", "leaky_relu"), ("leaky relu", "leaky_relu"), ("lrelu", "leaky_relu"),
    ("swish-1", "silu"), ("SiLU", "silu"), ("GELU_tanh", "gelu_tanh"), ("hard-swish", "hardswish"),
    ("HardTanh", "hardtanh"), ("logistic", "sigmoid"), ("atan", "arctan"),
])
def test_names_are_insensitive_and_accept_aliases(spelling, canonical):
    assert gradvet.activation(spelling).name == canonical


def test_names_lists_canonical_names_sorted():
    got = names()
    assert got == sorted(got) and len(got) == len(set(got)) >= 45
    assert "swish-1" not in got and "silu" in got
    assert set(names("tanh")) <= set(got) and "tanh" in names("tanh")


def test_misspelt_name_suggests_close_matches():
    with pytest.raises(GradvetError) as err:
        gradvet.activation("sigmoyd")
    message = str(err.value)
    assert "'sigmoyd'" in message and "'sigmoid'" in message and "\n" not in message


def test_unknown_and_out_of_range_parameters():
    with pytest.raises(GradvetError, match="unknown parameter 'alhpa'.*'alpha'"):
        gradvet.activation("elu", alhpa=2)
    with pytest.raises(GradvetError, match=r"alpha=0 is out of range; allowed: 0 < alpha <= 10"):
        gradvet.activation("elu", alpha=0)
    with pytest.raises(GradvetError, match="is not a number"):
        gradvet.activation("elu", alpha="big")
    with pytest.raises(GradvetError, match="lower=0.5 is above upper=0.2"):
        gradvet.activation("rrelu", lower=0.5, upper=0.2)
    with pytest.raises(GradvetError, match=r"^relu: unknown parameter .slope.; allowed: none \(it has no parameters\)\.$"):
        gradvet.activation("relu", slope=1)


def test_formula_activation_with_parameters():
    act = gradvet.activation("x*sigmoid(beta*x)", beta=1.5)
    swish = gradvet.activation("swish", beta=1.5)
    x = torch.linspace(-6, 6, 601, dtype=torch.float64)
    torch.testing.assert_close(act.fn(x), swish.fn(x), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(act.grad(x), swish.grad(x), rtol=1e-12, atol=1e-14)
    assert act.properties.max_grad == pytest.approx(swish.properties.max_grad, rel=1e-12)
    with pytest.raises(GradvetError, match="'gamma' does not appear"):
        gradvet.activation("x*sigmoid(beta*x)", beta=1.0, gamma=2.0)
    with pytest.raises(GradvetError, match="finite number"):
        gradvet.activation("x*sigmoid(beta*x)", beta=math.inf)


def test_ready_made_activation_passes_through():
    act = gradvet.activation("tanh")
    assert gradvet.activation(act) is act
    with pytest.raises(GradvetError):
        gradvet.activation(act, alpha=1)


@pytest.fixture
def registered():
    made = []
    yield made
    for name in made:
        unregister(name)


def test_register_without_grad_uses_autograd_and_gets_every_property(registered, tmp_path):
    def cubic_soft(x):
        return x + 0.1 * x**3 / (1 + x * x)

    act = gradvet.register("cubic_soft", cubic_soft, aliases=("cs",))
    registered.append("cubic_soft")
    assert "cubic_soft" in names() and gradvet.activation("CS").name == "cubic_soft"
    x = torch.linspace(-5, 5, 201, dtype=torch.float64)
    expected = 1 + 0.1 * (3 * x**2 * (1 + x * x) - x**3 * 2 * x) / (1 + x * x) ** 2
    torch.testing.assert_close(act.grad(x), expected, rtol=1e-12, atol=1e-14)
    p = act.properties
    assert p.monotonic and p.smoothness == "C-inf" and p.identity_near_0
    assert p.mean_gauss == pytest.approx(0.0, abs=1e-14)
    from gradvet.report.activation_plots import plot_activation

    assert plot_activation("cubic_soft", tmp_path / "c.png").stat().st_size > 5000


def test_register_with_closed_form_grad_and_module(registered):
    act = gradvet.register("scaled_tanh2", lambda x: 2 * torch.tanh(x), grad=lambda x: 2 / torch.cosh(x) ** 2,
                           family="tanh", module=lambda: torch.nn.Tanh())
    registered.append("scaled_tanh2")
    assert act.properties.max_grad == 2.0 and act.family == "tanh"
    assert isinstance(act.module(), torch.nn.Tanh)
    assert "scaled_tanh2" in names("tanh")


def test_register_refuses_clashes_and_bad_input(registered):
    with pytest.raises(GradvetError, match="built-in"):
        gradvet.register("relu", torch.relu)
    with pytest.raises(GradvetError, match="already taken by 'silu'"):
        gradvet.register("swish_1", torch.relu)
    with pytest.raises(GradvetError, match="not callable"):
        gradvet.register("thing", 3)
    with pytest.raises(GradvetError, match="not allowed"):
        gradvet.register("x*2", torch.relu)
    with pytest.raises(GradvetError, match="unknown family 'rleu'.*'relu'"):
        gradvet.register("thing", torch.relu, family="rleu")
    gradvet.register("twice", lambda x: 2 * x)
    registered.append("twice")
    with pytest.raises(GradvetError, match="already in the catalog"):
        gradvet.register("twice", lambda x: 3 * x)
    gradvet.register("twice", lambda x: 3 * x, replace=True)
    assert float(gradvet.activation("twice").grad(torch.tensor([1.0]))) == 3.0
    with pytest.raises(GradvetError, match="built in"):
        unregister("relu")
