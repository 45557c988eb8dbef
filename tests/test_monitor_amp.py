"""The Monitor under mixed precision: with `scaler=`, the norms are the true gradient's, however the
GradScaler's scale moves, and its routine overflow (a skipped step) raises no alert.

Oracle: a twin model trained on the unscaled loss in float32, stepping exactly when the scaler let the
monitored model step (scaling by a power of two is exact in floating point, so the two stay equal), its
gradient norms taken by torch.linalg.vector_norm in float64 right after each backward pass.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.monitor import Monitor


def test_norms_are_the_unscaled_gradients_and_overflow_steps_raise_no_alert():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05)
    # 2^127 overflows the scaled loss at once: the scaler skips steps and halves the scale until it fits,
    # then doubles it every 3 steps (growth_interval): the scale the norms are divided by keeps moving
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=3)
    x, y = torch.randn(32, 6), 10 * torch.randn(32, 1)  # a loss near 100: x 2^127 is Inf
    taken = []
    opt.register_step_post_hook(lambda *_: taken.append(True))
    expected, scales = [], []
    with Monitor(model, opt, scaler=scaler, keep_signals=True) as monitor:
        for _ in range(20):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            monitor.observe(loss)
            twin_opt.zero_grad(set_to_none=True)
            nn.functional.mse_loss(twin(x), y).backward()
            true = {name: math.sqrt(sum(float(torch.linalg.vector_norm(p.grad.double())) ** 2
                                        for p in module.parameters()))
                    for name, module in twin.named_children() if list(module.parameters())}
            before = len(taken)
            scales.append(scaler.get_scale())
            scaler.step(opt)
            scaler.update()
            if len(taken) > before:
                twin_opt.step()
                expected.append(true)
    assert len(expected) < 20  # some steps were skipped
    moves = [b / a for a, b in zip(scales, scales[1:]) if b != a]
    assert min(moves) < 1 < max(moves)  # and the scale the norms are divided by moved both ways
    assert len(monitor.signals) == len(expected)  # one monitored step per optimiser step taken
    for signals, true in zip(monitor.signals, expected):
        assert signals.layer_grad_norms.keys() == true.keys()
        for layer, value in true.items():
            assert signals.layer_grad_norms[layer] == pytest.approx(value, rel=1e-5)
    assert monitor.alerts == []
    for p, q in zip(model.parameters(), twin.parameters()):  # the twin followed the same path
        torch.testing.assert_close(p, q)


def test_without_an_optimizer_the_norms_are_unscaled_and_skipped_steps_are_dropped():
    """monitor.step() after scaler.update(), as a loop without an optimiser given to the monitor calls it:
    the scale of the backward pass divides the norms (not the one update() set for the next step)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1)  # the scale moves every step
    x, y = torch.randn(32, 6), 10 * torch.randn(32, 1)
    expected, skipped = [], 0
    with Monitor(model, scaler=scaler, keep_signals=True) as monitor:
        for _ in range(16):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            monitor.observe(loss)
            finite = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())
            twin_opt.zero_grad(set_to_none=True)
            nn.functional.mse_loss(twin(x), y).backward()
            total = math.sqrt(sum(float(torch.linalg.vector_norm(p.grad.double())) ** 2 for p in twin.parameters()))
            scaler.step(opt)
            scaler.update()
            monitor.step()
            if finite:
                twin_opt.step()
                expected.append(total)
            else:
                skipped += 1
    assert skipped > 0 and len(expected) >= 8  # growth every step: it overflows again after each step taken
    assert [s.grad_norm for s in monitor.signals] == pytest.approx(expected, rel=1e-5)
    assert monitor.alerts == [] and monitor.step_index == len(expected)


def test_a_last_pass_that_overflows_raises_no_alert_when_the_block_exits():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)
    with Monitor(model, opt, scaler=scaler) as monitor:
        loss = nn.functional.mse_loss(model(torch.randn(8, 4)), 100 * torch.ones(8, 1))
        scaler.scale(loss).backward()  # Inf gradients; the loop stops before scaler.step
        monitor.observe(loss)
        assert not all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())
    assert monitor.alerts == [] and monitor.step_index == 0


def test_a_scaler_must_be_a_grad_scaler():
    with pytest.raises(GradvetError, match="scaler must be a torch.amp.GradScaler"):
        Monitor(nn.Linear(2, 1), scaler=2.0**16)
