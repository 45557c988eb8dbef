"""Early warnings in the user's own loop: `gradvet.watch(..., monitor=...)` (the callbacks take the
same switch through the shared Session). Oracles: the Monitor used directly on a twin model (the
same alerts at the same steps), training bit-identical with and without, the store read back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradvet
from gradvet.base.errors import GradvetError
from gradvet.models import mlp
from gradvet.sweep import Store


@pytest.fixture(scope="module")
def digits():
    from gradvet.data import load

    return load("digits")


def train(model, data, steps, watch_kwargs=None, direct_monitor=False):
    """SGD on `model`; inside gradvet.watch(**watch_kwargs), or a bare Monitor, or nothing."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = gradvet.watch(model, opt, **watch_kwargs) if watch_kwargs is not None else None
    monitor = gradvet.Monitor(model, opt).__enter__() if direct_monitor else None
    try:
        for step in range(steps):
            lo = (step * 64) % 1024
            loss = nn.functional.cross_entropy(model(data.x_train[lo: lo + 64]), data.y_train[lo: lo + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        if handle is not None:
            handle.close()
        if monitor is not None:
            monitor.__exit__(None, None, None)
    return handle if handle is not None else monitor


def model_of(data, init):
    return mlp(data.n_features, data.n_classes, depth=6, width=64, init=init, seed=0)


def test_normal_init_is_flagged_at_step_0_as_a_bare_monitor_flags_it(digits):
    seen = []
    handle = train(model_of(digits, "normal"), digits, 3, {"every": 2, "monitor": seen.append})
    direct = train(model_of(digits, "normal"), digits, 3, direct_monitor=True)
    assert [(a.step, a.kind, a.layer) for a in handle.alerts] == [(a.step, a.kind, a.layer) for a in direct.alerts]
    assert handle.alerts and handle.alerts[0].step == 0 and handle.alerts[0].kind == "exploding"
    assert seen == handle.alerts  # the function got each alert as it came


def test_monitor_true_warns_in_one_line_and_training_is_unchanged(digits):
    plain, watched = model_of(digits, "normal"), model_of(digits, "normal")
    train(plain, digits, 2)
    with pytest.warns(UserWarning, match="gradvet: step 0: exploding"):
        train(watched, digits, 2, {"monitor": True})
    for a, b in zip(plain.parameters(), watched.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # bit for bit


def test_a_healthy_loop_gets_no_alert_and_its_alerts_are_saved_with_the_run(digits, tmp_path):
    healthy = train(model_of(digits, "he"), digits, 60, {"monitor": lambda a: None})
    assert healthy.alerts == []
    flagged = train(model_of(digits, "normal"), digits, 3, {"monitor": lambda a: None})
    key = flagged.save(tmp_path / "runs.db", name="normal init")
    with Store(tmp_path / "runs.db") as store:
        back = store.get(key)["alerts"]
    assert [(a["step"], a["kind"]) for a in back] == [(a.step, a.kind) for a in flagged.alerts]


def test_a_bad_monitor_value_is_one_sentence():
    model = nn.Linear(3, 2)
    with pytest.raises(GradvetError, match=r"monitor='yes' must be True, False or a function"):
        gradvet.watch(model, monitor="yes")
