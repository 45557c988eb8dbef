"""Honest advice from the probe (issue 12): where a NaN/Inf is born, inactive versus dead
units, and re-entering a Probe. Each case is checked against an independent computation:
a brute-force forward walk, autograd's own gradients, per-unit masks taken by separate hooks."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import gradvet
from gradvet import Probe
from gradvet.cli import app
from gradvet.models import mlp
from gradvet.probe import watched_modules
from gradvet.probe.dead_units import DEAD_RECORDS, DEAD_SPAN

runner = CliRunner()


# -- the first non-finite value ------------------------------------------------------------------
class MakeNaN(nn.Module):
    """Parameter-free, not watched by the probe: one NaN in its output."""

    def forward(self, x):
        y = x.clone()
        y[0, 0] = float("nan")
        return y


class MakeNaNInPlace(nn.Module):
    """Parameter-free, not watched: writes a NaN into the very tensor the module before returned
    (the probe must not take that tensor's earlier check for the next module's input)."""

    def forward(self, x):
        x[0, 0] = float("nan")
        return x


class _InfGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * float("inf")


class InfGradient(nn.Module):
    """Identity forward; its backward multiplies the gradient by inf."""

    def forward(self, x):
        return _InfGradient.apply(x)


def ten_modules(odd: nn.Module, after: int) -> nn.Sequential:
    """The issue's net: 10 modules (Linear, Tanh alternating, Linear last), `odd` right after module `after`."""
    torch.manual_seed(0)
    body = [nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8),
            nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*body[: after + 1], odd, *body[after + 1:])


def walk(model: nn.Sequential, x: torch.Tensor) -> tuple[str, str | None, bool]:
    """Brute force: run the children one by one and check each output. Returns the first watched
    module at or after the first non-finite output, the last watched module before that birth,
    and whether the value was born outside the reported module (so it is in its input)."""
    watched = {w.name for w in watched_modules(model)}
    born, last_finite = None, None
    for name, module in model.named_children():
        x = module(x)
        if born is None and not bool(torch.isfinite(x).all()):
            born = name
        if born is None and name in watched:
            last_finite = name
        if born is not None and name in watched:
            return name, last_finite, name != born
    raise AssertionError("no watched module at or after the birth")


def backward_meets_first(model: nn.Module, x, y) -> str:
    """Autograd's own gradients at every watched module's output (and its parameters): the
    last module in forward order holding a NaN/Inf, the one the backward pass reaches first."""
    outs, names = [], []

    def keep(name):
        def hook(module, inputs, output):
            outs.append(output)
            names.append(name)
        return hook

    hooks = [w.module.register_forward_hook(keep(w.name)) for w in watched_modules(model)]
    loss = nn.functional.cross_entropy(model(x), y)
    for h in hooks:
        h.remove()
    grads = torch.autograd.grad(loss, outs + list(model.parameters()), allow_unused=True)
    bad = [n for n, g in zip(names, grads) if not bool(torch.isfinite(g).all())]
    owner = {p: w.name for w in watched_modules(model) for p in w.module.parameters(recurse=False)}
    bad += [owner[p] for p, g in zip(model.parameters(), grads[len(outs):])
            if g is not None and not bool(torch.isfinite(g).all())]
    return max(bad, key=names.index)


X = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 1, 0])


def probed(model):
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(X), Y).backward()
        probe.step()
    return probe


@pytest.mark.parametrize("odd,after", [(MakeNaN, k) for k in (0, 1, 3, 4, 5, 7)]
                         + [(MakeNaNInPlace, k) for k in (0, 4, 6)])  # in place on a Linear's output
def test_nan_from_an_unwatched_module_is_placed_where_the_forward_pass_makes_it(after, odd):
    model = ten_modules(odd(), after)
    layer, last_finite, in_input = walk(model, X)
    backward = backward_meets_first(model, X, Y)
    probe = probed(model)
    for d in (gradvet.diagnose(probe), gradvet.diagnose(probe.trace)):  # with the probe, and from its trace alone
        nf = d.nonfinite
        assert (nf.step, nf.forward_layer, nf.in_input, nf.after, nf.backward_layer) == (0, layer, in_input,
                                                                                          last_finite, backward)
        assert f"first non-finite in the forward pass at {layer!r}" in d.cause
        assert f"the backward pass met it first at {backward!r}" in d.cause
        assert d.verdict == "exploding"


def test_the_issue_case_names_the_module_after_the_birth_not_the_output_layer():
    """A NaN made by a parameter-free module after layer 4 of a 10-module net: reported at '9' before."""
    model = ten_modules(MakeNaN(), 4)
    assert len(model) == 10
    d = gradvet.diagnose(probed(model))
    assert walk(model, X) == ("6", "4", True)
    assert d.cause == ("a value became NaN or Inf at step 0: first non-finite in the forward pass at '6', already in "
                       "its input: made after '4' by code the probe does not watch (the backward pass met it first "
                       "at '9').")


def test_nan_made_by_a_watched_module_is_in_its_output():
    model = ten_modules(nn.Identity(), 4)
    with torch.no_grad():
        model[7].weight[0, 0] = float("inf")  # the Linear after the Identity: finite input, Inf output
    layer, last_finite, in_input = walk(model, X)
    assert (layer, in_input) == ("7", False)
    d = gradvet.diagnose(probed(model))
    assert (d.nonfinite.forward_layer, d.nonfinite.in_input) == ("7", False)
    assert "at '7', in its output, from a finite input: the module itself made it" in d.cause


def test_a_gradient_that_overflows_with_a_finite_forward_pass_is_named_by_the_backward_pass():
    model = ten_modules(InfGradient(), 4)
    assert bool(torch.isfinite(model(X)).all())
    backward = backward_meets_first(model, X, Y)
    d = gradvet.diagnose(probed(model))
    assert d.nonfinite.forward_layer is None and d.nonfinite.backward_layer == backward == "4"
    assert "while every watched module's input and output were finite: the backward signal overflowed" in d.cause


def test_cli_names_the_forward_birth(tmp_path, monkeypatch):
    """`gradvet diagnose --model nanmodel:make` on the issue's net (digits: 64 features, 10 classes)."""
    (tmp_path / "nanmodel_i12.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class MakeNaN(nn.Module):
            def forward(self, x):
                y = x.clone()
                y[0, 0] = float("nan")
                return y

        def make():
            return nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16),
                                 MakeNaN(), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 10))
    """))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["diagnose", "--model", "nanmodel_i12:make", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["verdict"] == "exploding"
    assert "first non-finite in the forward pass at '6'" in d["cause"]
    assert "the backward pass met it first at '9'" in d["cause"]


# -- inactive and dead units ---------------------------------------------------------------------
def inactive_masks(model: nn.Module):
    """Separate forward hooks on every ReLU: per call, the units with z <= 0 (relu'(z) = 0) for every sample."""
    masks: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, inputs, output):
            masks[name] = (inputs[0].detach() <= 0).all(0)
        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    return masks, hooks


def test_he_relu_net_at_step_0_is_told_inactive_not_dead():
    """The issue's net: 30 ReLU layers of 128, He init, digits, at initialisation."""
    from gradvet.data import load

    data = load("digits")
    torch.manual_seed(0)
    model = mlp(64, 10, 30, 128, "relu", "he")
    x, y = data.x_train[:128], data.y_train[:128]
    masks, hooks = inactive_masks(model)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    expected = {n: float(m.float().mean()) for n, m in masks.items()}
    mean = sum(expected.values()) / len(expected)
    assert mean > 0.2  # the issue's situation: about a quarter of the units off for the whole batch
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    d = gradvet.diagnose(probe)
    assert d.verdict == "healthy"
    for lay in d.layers:
        assert lay.dead_fraction == pytest.approx(expected[lay.activation])
        assert lay.persistent_dead_fraction is None and "dead" not in lay.flags
    text = " ".join([d.cause, *d.notes, *(r.action + " " + r.why for r in d.remedies)])
    assert "recover" not in text and "leaky_relu" not in text and "are dead" not in text
    note = next(n for n in d.notes if "inactive" in n)
    assert note.startswith(f"on average {mean:.0%} of the units are inactive on the batch of step 0")
    assert "not yet watched long enough" in note


def test_cli_he_relu_net_at_step_0_is_told_inactive_not_dead():
    result = runner.invoke(app, ["diagnose", "--depth", "30", "--width", "128", "--activation", "relu", "--init", "he",
                                 "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["verdict"] == "healthy" and not any("leaky_relu" in r["action"] for r in d["remedies"])
    mean = sum(lay["dead_fraction"] for lay in d["layers"]) / len(d["layers"])
    assert mean > 0.2
    expected = f"on average {mean:.0%} of the units are inactive on the batch of step 0"
    assert any(n.startswith(expected) for n in d["notes"])
    assert "recover" not in result.stdout


def persistent_by_brute_force(history: list[tuple[int, torch.Tensor]]) -> float | None:
    """From the masks of every recorded step so far: the fraction of units inactive on every recorded
    step from the last one at or before cutoff = min(now - DEAD_SPAN, the DEAD_RECORDS-th last record)
    through now; None while that cutoff lies before the first record."""
    steps = [s for s, _ in history]
    if len(steps) < DEAD_RECORDS or min(steps[-1] - DEAD_SPAN, steps[-DEAD_RECORDS]) < steps[0]:
        return None
    cutoff = min(steps[-1] - DEAD_SPAN, steps[-DEAD_RECORDS])
    start = max(i for i, s in enumerate(steps) if s <= cutoff)
    always = torch.stack([m for _, m in history[start:]]).all(0)
    return float(always.float().mean())


def dying_net():
    """A ReLU net whose units are killed by a large negative bias: half of each layer at the start,
    a quarter more of the last hidden layer at step 40."""
    torch.manual_seed(0)
    model = mlp(8, 3, depth=3, width=16, activation="relu", init="he")
    with torch.no_grad():
        for block in model.hidden:
            block.linear.bias[:8] = -100.0
    return model


@pytest.mark.parametrize("every", [1, 7, 100])
def test_persistent_dead_fraction_equals_per_unit_masks_over_recorded_steps(every):
    model = dying_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    masks, hooks = inactive_masks(model)
    history: dict[str, list] = {}
    with Probe(model, opt, every=every) as probe:
        for step in range(310):
            if step == 40:
                with torch.no_grad():
                    model.hidden[2].linear.bias[8:12] = -100.0
            x, y = torch.randn(32, 8, generator=generator), torch.randint(0, 3, (32,), generator=generator)
            nn.functional.cross_entropy(model(x), y).backward()
            if step % every == 0:
                for name, mask in masks.items():
                    history.setdefault(name, []).append((step, mask.clone()))
            opt.step()
            opt.zero_grad()
    for h in hooks:
        h.remove()
    compared = 0
    for name, records in history.items():
        got = dict(zip(*probe.trace.series(name, "persistent_dead_fraction")))
        for i in range(len(records)):
            expected = persistent_by_brute_force(records[: i + 1])
            step = records[i][0]
            if expected is None:
                assert step not in got
            else:
                assert got[step] == pytest.approx(expected), (name, step)
                compared += 1
    assert compared > 0
    last = probe.trace.at(probe.trace.steps()[-1])
    assert last["hidden.2.act"]["persistent_dead_fraction"] >= 12 / 16  # the units killed at step 40 too, by now


def test_dead_units_over_many_steps_get_the_permanent_wording_and_not_before():
    model = dying_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    with Probe(model, opt, every=10) as probe:
        for _ in range(2 * DEAD_SPAN):
            x, y = torch.randn(32, 8, generator=generator), torch.randint(0, 3, (32,), generator=generator)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    late = gradvet.diagnose(probe)
    remedy = next(r for r in late.remedies if "leaky_relu" in r.action)
    assert late.layer_mean("persistent_dead_fraction") >= 0.5
    assert f"of the units are dead: f'(z) = 0 for every sample on every recorded step over at least the last " \
           f"{DEAD_SPAN} training steps (to step {late.step})" in remedy.why
    assert "have not recovered" in remedy.why and "will not" not in remedy.why
    assert all("dead" in lay.flags for lay in late.layers)
    early = gradvet.diagnose(probe, step=0)  # the same units, seen once: inactive, not (yet) dead
    assert not any("leaky_relu" in r.action for r in early.remedies)
    assert all("inactive" in lay.flags and "dead" not in lay.flags for lay in early.layers)
    assert any("inactive on the batch of step 0" in n for n in early.notes)


def test_cli_dead_net_over_training_is_told_dead(tmp_path, monkeypatch):
    (tmp_path / "deadmodel_i12.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def make():
            layers, n = [], 64
            for _ in range(3):
                linear = nn.Linear(n, 16)
                with torch.no_grad():
                    linear.bias[:8] = -100.0
                layers += [linear, nn.ReLU()]
                n = 16
            return nn.Sequential(*layers, nn.Linear(16, 10))
    """))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["diagnose", "--model", "deadmodel_i12:make", "--steps", "150", "--lr", "0.05",
                                 "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    remedy = next(r for r in d["remedies"] if "leaky_relu" in r["action"])
    assert "of the units are dead" in remedy["why"] and "have not recovered" in remedy["why"]
    assert all(lay["persistent_dead_fraction"] >= 0.5 for lay in d["layers"])


# -- re-entering a probe -------------------------------------------------------------------------
def optimizer_hooks(opt) -> tuple[int, int]:
    return len(opt._optimizer_step_pre_hooks), len(opt._optimizer_step_post_hooks)


def module_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_re_entering_a_probe_leaves_the_optimizers_own_hooks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.register_step_pre_hook(lambda *a: None)  # the user's own hooks stay
    opt.register_step_post_hook(lambda *a: None)
    original = optimizer_hooks(opt)
    probe = Probe(model, opt)

    def train_step():
        nn.functional.cross_entropy(model(torch.randn(5, 3)), torch.tensor([0, 1, 0, 1, 1])).backward()
        opt.step()
        opt.zero_grad()

    with probe:
        train_step()
    with probe:  # again, after the first block
        train_step()
    assert optimizer_hooks(opt) == original and module_hooks(model) == 0
    with probe:
        with probe:  # inside its own block
            train_step()
        assert optimizer_hooks(opt) == (original[0] + 1, original[1] + 1)  # still recording
        train_step()
    assert optimizer_hooks(opt) == original and module_hooks(model) == 0 and probe.hooks_attached == 0
    assert probe.trace.steps() == [0, 1, 2, 3]  # every step recorded once, the nested one included
