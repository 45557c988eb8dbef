"""The Monitor against independent computations (float64 autograd on a copy of the model), its hook
hygiene, and its alerts on real runs: an N(0, 1) net, a transformer whose learning rate jumps, and
healthy runs that must stay silent."""

from __future__ import annotations

import contextlib
import copy
import json
import math

import pytest
import torch
from torch import nn

from gradvet import GradvetError
from gradvet.models import mlp
from gradvet.monitor import Alert, Monitor
from gradvet.monitor.alert import EXPLODING, NONFINITE
from gradvet.monitor.gradients import ROOT, layer_of


def small_net(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).to(dtype)


def batches(seed: int, n: int, size: int = 5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 6, generator=g, dtype=dtype), torch.randint(0, 3, (size,), generator=g))
            for _ in range(n)]


def layer_norms(grads: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
    """Total and per-layer norms of named gradients, by torch.linalg.vector_norm in float64."""
    per: dict[str, float] = {}
    for name, g in grads.items():
        per[layer_of(name)] = per.get(layer_of(name), 0.0) + float(torch.linalg.vector_norm(g.double())) ** 2
    total = math.sqrt(sum(per.values()))
    return total, {k: math.sqrt(v) for k, v in per.items()}


# -- the numbers --------------------------------------------------------------------------------------

def test_norms_are_those_of_the_accumulated_gradient_before_clipping():
    model = small_net()
    twin = copy.deepcopy(model)  # computes the gradients independently, by torch.autograd.grad
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    expected = []
    with Monitor(model, opt, keep_signals=True) as monitor:
        for step in range(12):
            micro = batches(step, 3)
            twin.load_state_dict(model.state_dict())
            names = [n for n, _ in twin.named_parameters()]
            total = [torch.zeros_like(p) for p in twin.parameters()]
            losses = []
            for x, y in micro:
                loss = loss_fn(twin(x), y)
                losses.append(loss.item())
                for acc, g in zip(total, torch.autograd.grad(loss, list(twin.parameters()))):
                    acc += g
            expected.append((layer_norms(dict(zip(names, total))), sum(losses) / 3))
            opt.zero_grad()
            for x, y in micro:
                loss = loss_fn(model(x), y)
                loss.backward()
                monitor.observe(loss)
            clipped = nn.utils.clip_grad_norm_(model.parameters(), 0.01)  # the monitor must not see this
            assert float(clipped) == pytest.approx(expected[-1][0][0], rel=1e-12)
            opt.step()
    assert len(monitor.signals) == 12
    for s, ((total, per), loss) in zip(monitor.signals, expected):
        assert s.grad_norm == pytest.approx(total, rel=1e-12) and s.grad_norm > 0.05
        assert s.layer_grad_norms == pytest.approx(per, rel=1e-12)
        assert s.loss == pytest.approx(loss, rel=1e-12)
        assert s.backward_passes == 3 and s.lr == 0.1
    assert list(monitor.signals[0].layer_grad_norms) == ["0", "2", "4"] == monitor.layers


def test_update_ratios_on_sampled_steps_against_copies_of_the_weights():
    model = small_net(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    expected = {}
    with Monitor(model, opt, keep_signals=True) as monitor:
        for step, (x, y) in enumerate(batches(1, 45)):
            if step == 33:
                opt.param_groups[0]["lr"] = 0.05  # a jump: sampled at once
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            moved: dict[str, float] = {}
            size: dict[str, float] = {}
            for n, p in model.named_parameters():
                layer = layer_of(n)
                moved[layer] = moved.get(layer, 0.0) + float((p.detach() - before[n]).norm()) ** 2
                size[layer] = size.get(layer, 0.0) + float(before[n].norm()) ** 2
            expected[step] = {k: math.sqrt(moved[k] / size[k]) for k in moved}
    sampled = [s.step for s in monitor.signals if s.update_ratios is not None]
    assert sampled == [*range(11), 20, 30, 33, 40]  # the first 10, every 10th, and the jump at 33
    for s in monitor.signals:
        if s.update_ratios is not None:
            assert s.update_ratios == pytest.approx(expected[s.step], rel=1e-9)


def test_without_an_optimizer_step_ends_the_step_and_updates_come_from_the_weights():
    model = small_net(2)
    loss_fn = nn.CrossEntropyLoss()
    expected = []
    with Monitor(model, keep_signals=True) as monitor:
        for x, y in batches(2, 4):
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            model.zero_grad()
            loss_fn(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.5 * p.grad
            moved = {layer_of(n): 0.0 for n in before}
            size = dict(moved)
            for n, p in model.named_parameters():
                moved[layer_of(n)] += float((p.detach() - before[n]).norm()) ** 2
                size[layer_of(n)] += float(before[n].norm()) ** 2
            expected.append({k: math.sqrt(moved[k] / size[k]) for k in moved})
            monitor.step()
    assert [s.step for s in monitor.signals] == [0, 1, 2, 3]
    for s, ratios in zip(monitor.signals, expected):
        assert s.update_ratios == pytest.approx(ratios, rel=1e-9)
        assert s.lr is None and s.loss is None and s.backward_passes == 1


def test_huge_finite_gradients_are_not_taken_for_nonfinite():
    model = small_net(3, torch.float32)
    x, y = batches(3, 1, dtype=torch.float32)[0]
    with Monitor(model) as monitor:
        (model(x).sum() * 1e25).backward()  # gradients near 1e25: their squares overflow float32
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        monitor.step()
    total, _ = layer_norms(grads)
    assert math.isfinite(monitor.last.grad_norm) and monitor.last.grad_norm == pytest.approx(total, rel=1e-6)
    assert all(a.kind != NONFINITE for a in monitor.alerts)


def test_a_nan_is_reported_not_raised():
    model = small_net(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batches(4, 1)[0]
    with Monitor(model, opt) as monitor:
        loss = nn.functional.cross_entropy(model(x), y) * float("nan")
        loss.backward()
        monitor.observe(loss)
        opt.step()
    assert math.isnan(monitor.last.grad_norm) and math.isnan(monitor.last.loss)
    (alert,) = [a for a in monitor.alerts if a.kind == NONFINITE]
    assert alert.step == 0 and alert.layer == "0"  # the first layer in model order
    json.dumps(alert.to_dict(), allow_nan=False)  # strict JSON: NaN as a string


# -- alerts on real runs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from gradvet.data import load

    return load("digits")


def sgd_run(data, seed: int, lr_at, steps: int = 150, batch: int = 64, init: str = "he",
            depth: int = 6, **monitor_options) -> Monitor:
    torch.manual_seed(seed)
    model = mlp(data.n_features, data.n_classes, depth=depth, width=64, init=init)
    opt = torch.optim.SGD(model.parameters(), lr=lr_at(0))
    gen = torch.Generator().manual_seed(seed)
    with Monitor(model, opt, **monitor_options) as monitor:
        for step in range(steps):
            opt.param_groups[0]["lr"] = lr_at(step)
            idx = torch.randint(0, data.x_train.shape[0], (batch,), generator=gen)
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            monitor.observe(loss)
            if not math.isfinite(loss.item()):
                break
            opt.step()
    return monitor


def test_normal_init_deep_mlp_gets_an_exploding_alert_at_step_0(digits):
    monitor = sgd_run(digits, 0, lambda t: 0.1, steps=5, init="normal")
    first = monitor.alerts[0]
    assert (first.step, first.kind, first.detector) == (0, EXPLODING, "update_ratio")
    assert first.value > 1 and "initialisation" in first.remedy


def test_normal_init_alert_from_gradients_alone_without_optimizer_or_loss(digits):
    torch.manual_seed(0)
    model = mlp(digits.n_features, digits.n_classes, depth=6, width=64, init="normal")
    with Monitor(model) as monitor:
        nn.functional.cross_entropy(model(digits.x_train[:64]), digits.y_train[:64]).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        monitor.step()
    assert [(a.step, a.kind) for a in monitor.alerts] == [(0, EXPLODING)]


@pytest.mark.parametrize("name, lr_at, batch", [
    ("He ReLU MLP, SGD 0.1", lambda t: 0.1, 64),
    ("noisy batch of 4, SGD 0.05", lambda t: 0.05, 4),
    ("cosine decay from 0.2", lambda t: 0.1 * (1 + math.cos(math.pi * t / 150)), 64),
])
def test_healthy_runs_get_no_alert(digits, name, lr_at, batch):
    monitor = sgd_run(digits, 200, lr_at, batch=batch)
    assert monitor.alerts == [], name
    assert monitor.step_index == 150


def test_engine_run_with_normal_init_is_warned_before_it_diverges(digits):
    from gradvet.spec import RunSpec
    from gradvet.train import run

    class Observer:
        def start(self, model, optimizer):
            self.monitor = Monitor(model, optimizer)
            self.monitor.__enter__()

        def after_backward(self, step):
            pass

        def finish(self):
            self.monitor.__exit__(None, None, None)
            return []

    observer = Observer()
    result = run(RunSpec(depth=6, width=64, init="normal", lr=0.1, steps=30, eval_every=0), probe=observer,
                 dataset=digits)
    assert result.status == "diverged"
    diverged_step = result.metrics["diverged_at"] - 1  # the engine counts steps from 1
    assert observer.monitor.alerts[0].step < diverged_step


def test_transformer_whose_learning_rate_jumps_is_warned_before_the_loss_explodes():
    torch.manual_seed(200)
    vocab, length = 16, 12
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
    model = nn.ModuleDict({"tokens": nn.Embedding(vocab, 32), "positions": nn.Embedding(length, 32),
                           "encoder": nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                           "out": nn.Linear(32, vocab)})

    def forward(x):
        h = model["tokens"](x) + model["positions"](torch.arange(length))
        return model["out"](model["encoder"](h))

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(200)
    losses = []
    with Monitor(model, opt) as monitor:
        for step in range(120):
            if step == 40:
                opt.param_groups[0]["lr"] = 0.6
            x = torch.randint(0, vocab, (32, length), generator=gen)
            loss = nn.functional.cross_entropy(forward(x).reshape(-1, vocab), x.flip(1).reshape(-1))
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            monitor.observe(loss)
            if not math.isfinite(losses[-1]):
                break
            opt.step()
    early = sorted(losses[:10])[5]
    diverged = next(t for t, v in enumerate(losses) if not v <= 10 * early)  # NaN counts
    assert monitor.alerts and 40 <= monitor.alerts[0].step < diverged
    assert monitor.alerts[0].kind in (EXPLODING, "unstable")


# -- hygiene ------------------------------------------------------------------------------------------

def hook_counts(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, int]:
    params = sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())
    return params, len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)


def test_hooks_are_removed_after_an_exception_and_the_model_is_left_alone():
    model = small_net(5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt)
    with pytest.raises(RuntimeError, match="user's own"):
        with monitor:
            assert hook_counts(model, opt) == (len(list(model.parameters())), 2)
            x, y = batches(5, 1)[0]
            nn.functional.cross_entropy(model(x), y).backward()
            raise RuntimeError("the user's own error")
    assert hook_counts(model, opt) == (0, 0) and monitor.hooks_attached == 0
    steps = monitor.step_index
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert monitor.step_index == steps


def test_on_alert_can_stop_training_by_raising():
    torch.manual_seed(0)
    model = mlp(10, 3, depth=6, width=32, init="normal")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[Alert] = []

    def stop(alert: Alert) -> None:
        seen.append(alert)
        raise KeyboardInterrupt(alert.message)

    monitor = Monitor(model, opt, on_alert=stop)
    with pytest.raises(KeyboardInterrupt):
        with monitor:
            for _ in range(5):
                nn.functional.cross_entropy(model(torch.randn(8, 10)), torch.randint(0, 3, (8,))).backward()
                opt.step()
                opt.zero_grad()
    assert seen == monitor.alerts and len(seen) == 1 and seen[0].step == 0
    assert hook_counts(model, opt) == (0, 0)


def train(monitored: bool) -> tuple[list[torch.Tensor], list[float]]:
    model = small_net(6)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    monitor = Monitor(model, opt, keep_signals=True, update_every=3) if monitored else None
    with monitor if monitor is not None else contextlib.nullcontext():
        for step in range(25):
            opt.zero_grad()
            for x, y in batches(100 + step, 2):
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                if monitor is not None:
                    monitor.observe(loss)
                losses.append(loss.item())
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
    return [p.detach().clone() for p in model.parameters()], losses


def test_training_is_bit_identical_with_and_without_a_monitor():
    plain_params, plain_losses = train(False)
    watched_params, watched_losses = train(True)
    assert plain_losses == watched_losses
    assert all(torch.equal(a, b) for a, b in zip(plain_params, watched_params))


def test_reentering_an_active_monitor_is_a_no_op():
    model = small_net(7)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, opt)
    with monitor:
        once = monitor.hooks_attached
        with monitor:
            assert monitor.hooks_attached == once
        x, y = batches(7, 1)[0]
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        monitor.observe(loss)  # still active after the inner exit
        opt.step()
    assert monitor.hooks_attached == 0 and monitor.step_index == 1


def test_layers_are_the_modules_owning_parameters():
    class Root(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))
            self.body = nn.Linear(2, 2)
            self.frozen = nn.Linear(2, 2).requires_grad_(False)

        def forward(self, x):
            return self.frozen(self.body(x)) * self.scale

    monitor = Monitor(Root())
    with monitor:
        pass
    assert monitor.layers == [ROOT, "body"]


# -- bad input ----------------------------------------------------------------------------------------

def one_sentence(err: GradvetError, *fragments: str) -> None:
    text = str(err)
    assert "\n" not in text and text.endswith(".")
    for fragment in fragments:
        assert fragment in text, text


def test_bad_arguments_are_one_sentence_errors():
    model = small_net()
    with pytest.raises(GradvetError) as err:
        Monitor("model")
    one_sentence(err.value, "torch.nn.Module", "str")
    with pytest.raises(GradvetError) as err:
        Monitor(model, optimizer="sgd")
    one_sentence(err.value, "optimizer", "str")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(GradvetError) as err:
            Monitor(model, update_every=bad)
        one_sentence(err.value, "update_every", repr(bad))
    with pytest.raises(GradvetError) as err:
        Monitor(model, on_alert="print")
    one_sentence(err.value, "on_alert", "str")
    with pytest.raises(GradvetError) as err:
        with Monitor(nn.ReLU()):
            pass
    one_sentence(err.value, "ReLU", "no trainable parameters")


def test_misuse_of_observe_and_step_is_a_one_sentence_error():
    model = small_net()
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(GradvetError) as err:
        monitor.observe(1.0)
    one_sentence(err.value, "outside")
    with monitor:
        for bad, fragment in (("1.0", "str"), (torch.ones(2), "(2,)"), (None, "NoneType")):
            with pytest.raises(GradvetError) as err:
                monitor.observe(bad)
            one_sentence(err.value, fragment)
        with pytest.raises(GradvetError) as err:
            monitor.step()
        one_sentence(err.value, "optimizer.step()")


def test_alert_to_dict_is_strict_json_and_round_trips():
    alert = Alert(step=3, kind=EXPLODING, layer="fc", message="m.", remedy="r.", detector="growth", since=1,
                  value=float("inf"))
    data = json.loads(json.dumps(alert.to_dict(), allow_nan=False))
    assert data == {"step": 3, "kind": "exploding", "layer": "fc", "message": "m.", "remedy": "r.",
                    "detector": "growth", "since": 1, "value": "inf"}
