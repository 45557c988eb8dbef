"""The probe's cheaper reductions (issue 17) against the plain computations they replace, on the
values that differ in how they are treated: NaN, +-Inf, -0.0, empty and integer tensors."""

from __future__ import annotations

import math

import torch

from gradvet.activations import activation
from gradvet.probe.dead_units import inactive_units
from gradvet.probe.metrics.input_std import InputStd
from gradvet.probe.metrics.layer_step import LayerStep, Seen
from gradvet.probe.metrics.saturated_fraction import count_below
from gradvet.probe.nonfinite import extremes

NAN, INF = float("nan"), float("inf")
ODD = torch.tensor([0.0, -0.0, 0.04, 0.05, 0.06, 1.0, 3.0, NAN, INF, -INF, 1e-30])


def all_finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(torch.stack(extremes(tensor))).all())


def test_extremes_are_finite_exactly_when_every_value_is():
    torch.manual_seed(0)
    for bad in (NAN, INF, -INF, None):
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            x = torch.randn(5, 7).to(dtype) * 1e3
            if bad is not None:
                x[3, 2] = bad
            assert all_finite(x) == bool(torch.isfinite(x).all())
    assert all_finite(torch.full((3,), 3e38))  # large but finite: no overflow (a sum of squares would)
    assert all_finite(torch.arange(5))  # integers are finite
    assert all_finite(torch.empty(0, 4))
    z = torch.randn(4, dtype=torch.complex64)
    assert all_finite(z)
    z[1] = complex(NAN, 0)
    assert not all_finite(z)


def test_count_below_is_the_brute_force_count():
    torch.manual_seed(1)
    for values in (ODD, torch.rand(300, 17).double(), torch.rand(64) * 0.1):
        for level in (0.05, 0.5, 1e-30, 0.0):
            brute = sum(1 for v in values.reshape(-1).tolist() if v < level)  # NaN < level is False
            assert count_below(values, level).item() == brute
    for dtype in (torch.float16, torch.bfloat16):  # counts past 65504 (float16's largest) and 256 (bfloat16's)
        values = (torch.rand(70_001, generator=torch.Generator().manual_seed(2)) * 0.1).to(dtype)
        level = torch.tensor(0.05, dtype=dtype).item()  # the level as the tensor's dtype holds it, as `<` takes it
        brute = sum(1 for v in values.float().tolist() if v < level)
        assert count_below(values, 0.05).item() == brute == int((values < 0.05).sum()), dtype


def test_silus_derivative_is_differentiable_again_and_finite():
    silu = activation("silu")
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    (second,) = torch.autograd.grad(silu.grad(x).sum(), x)
    by_hand = torch.sigmoid(x) * (1 - torch.sigmoid(x)) * (2 + x * (1 - 2 * torch.sigmoid(x)))  # d/dx of s(1 + x(1 - s))
    torch.testing.assert_close(second, by_hand.detach())
    with torch.no_grad():  # the probe's path (torch's fused kernel) gives the same f'
        torch.testing.assert_close(silu.grad(x.detach()), (torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x)))).detach())


def test_inactive_units_are_those_with_every_slope_zero():
    slopes = torch.tensor([[0.0, 1.0, 0.0, NAN, 0.0],
                           [0.0, 0.0, 2.0, 0.0, -0.0]])
    brute = [all(slopes[i, j].item() == 0 for i in range(2)) for j in range(5)]
    assert inactive_units(slopes).tolist() == brute == [True, False, False, False, True]
    assert inactive_units(torch.empty(0, 3)).tolist() == [True, True, True]  # (x == 0).all() over no sample


def test_relu_slope_is_one_exactly_where_the_input_is_positive():
    relu = activation("relu")
    for dtype in (torch.float32, torch.float64):
        x = ODD.to(dtype)
        got = relu.grad(x)
        assert got.dtype == dtype
        assert got.tolist() == [1.0 if v > 0 else 0.0 for v in x.tolist()]
        assert not got.signbit().any()  # +0.0, as (x > 0).to(dtype) gives


def test_input_std_is_torch_std_in_float64():
    torch.manual_seed(2)
    for x in (torch.randn(128, 784) * 3 + 5, torch.randn(2, 1), torch.randn(6, 3, 4) * 1e-3):
        layer = LayerStep("<input>", "model")
        InputStd().on_input(layer, Seen(x))
        assert math.isclose(layer.sums["std"].item(), x.double().std().item(), rel_tol=1e-5)
