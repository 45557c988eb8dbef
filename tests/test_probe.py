"""The probe against brute-force autograd (float64), hook hygiene, steps, sampling."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

import gradvet
from gradvet import GradvetError, Probe
from gradvet.models import mlp
from gradvet.probe import watched_modules
from gradvet.report.diagnosis_view import render_html


class SharedTwice(nn.Module):
    """One Linear applied twice in a forward pass (weight sharing)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.shared = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.inp(x))
        h = self.act(self.shared(h))
        h = self.act(self.shared(h))
        return self.out(h)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = nn.GELU()
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.head(self.act2(self.conv2(self.act1(self.conv1(x)))).flatten(1))


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.act = nn.Tanh()
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.act(out[:, -1]))


def inputs_for(name):
    torch.manual_seed(3)
    if name == "cnn":
        return torch.randn(5, 1, 6, 6, dtype=torch.float64)
    if name == "lstm":
        return torch.randn(5, 7, 4, dtype=torch.float64)
    if name == "shared":
        return torch.randn(5, 6, dtype=torch.float64)
    return torch.randn(5, 10, dtype=torch.float64)


def build(name):
    torch.manual_seed(0)
    if name == "mlp":
        return mlp(10, 3, depth=3, width=7, activation="tanh", init="xavier").double()
    if name == "residual":
        return mlp(10, 3, depth=3, width=10, activation="gelu", init="he", residual=True).double()
    if name == "cnn":
        return SmallCNN().double()
    if name == "lstm":
        return LSTMNet().double()
    return SharedTwice().double()


def brute_force(model, x, y):
    """Per watched module: ||dL/d output|| (all calls), ||dL/d input|| through the module, and
    ||dL/dW||, ||dL/db|| by torch.autograd.grad, independent of the probe's hooks."""
    seen = {}
    names = {w.module: w.name for w in watched_modules(model)}
    handles = [m.register_forward_hook(lambda m, i, o: seen.setdefault(names[m], []).append((i[0], o if torch.is_tensor(o) else o[0])))
               for m in names]
    loss = nn.functional.cross_entropy(model(x), y)
    for h in handles:
        h.remove()
    result = {}
    for name, calls in seen.items():
        outs = [o for _, o in calls]
        g_outs = torch.autograd.grad(loss, outs, retain_graph=True)
        result[(name, "output_grad_norm")] = math.sqrt(sum(float(g.norm()) ** 2 for g in g_outs))
        g_ins = []
        for (inp, out), g in zip(calls, g_outs):
            if inp.requires_grad:
                (gi,) = torch.autograd.grad(out, inp, g, retain_graph=True)
                g_ins.append(gi)
        if g_ins:
            result[(name, "input_grad_norm")] = math.sqrt(sum(float(g.norm()) ** 2 for g in g_ins))
    params = dict(model.named_parameters())
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    for w in watched_modules(model):
        if w.kind == "activation":
            continue
        for pname, _ in w.module.named_parameters(recurse=False):
            full = f"{w.name}.{pname}" if w.name else pname
            metric = "bias_grad_norm" if pname.startswith("bias") else "weight_grad_norm"
            key = (w.name, metric)
            result[key] = math.sqrt(result.get(key, 0.0) ** 2 + float(grads[full].norm()) ** 2)
    return result


@pytest.mark.parametrize("name", ["mlp", "residual", "cnn", "lstm", "shared"])
def test_recorded_norms_equal_brute_force(name):
    model = build(name)
    x = inputs_for(name)
    y = torch.tensor([0, 1, 2, 1, 0])
    expected = brute_force(model, x, y)
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    got = probe.trace.at(0)
    assert expected
    for (layer, metric), value in expected.items():
        assert got[layer][metric] == pytest.approx(value, rel=1e-6, abs=1e-12), (layer, metric)
        if metric == "input_grad_norm":
            assert got[layer]["gain"] == pytest.approx(value / got[layer]["output_grad_norm"], rel=1e-6)
    if name == "shared":
        assert got["shared"]["calls"] == 2.0 and got["act"]["calls"] == 3.0
        assert probe.shared == {"shared": 2, "act": 3}
        assert any("called more than once" in n for n in gradvet.diagnose(probe).notes)


def test_forward_statistics_dead_saturated_and_update_ratio():
    torch.manual_seed(0)
    model = mlp(8, 2, depth=2, width=16, activation="relu", init="normal").double()
    model.hidden[0].linear.bias.data[:4] = -100.0  # four units dead for every sample
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(64, 8, dtype=torch.float64)
    y = torch.randint(0, 2, (64,))
    z = model.hidden[0].linear(x).detach()
    # the oracle of update_ratio: one SGD step moves W by lr * dL/dW (autograd, float64, before the step)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    params = {name: [m.weight, m.bias] for name, m in layers.items()}
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), [p for ps in params.values() for p in ps])
    grads = iter(grads)
    expected_ratio = {}
    for name, ps in params.items():
        step_norm = math.sqrt(sum(float((0.5 * next(grads)).norm()) ** 2 for _ in ps))
        expected_ratio[name] = step_norm / math.sqrt(sum(float(p.detach().norm()) ** 2 for p in ps))
    with Probe(model, opt) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    row = probe.trace.at(0)
    act = row["hidden.0.act"]
    assert act["dead_fraction"] == pytest.approx(float((z <= 0).all(0).double().mean()))
    assert act["dead_fraction"] >= 4 / 16
    assert act["saturated_fraction"] == pytest.approx(float((z <= 0).double().mean()))  # relu' < 0.05 iff z <= 0
    a = torch.relu(z)
    assert act["mean"] == pytest.approx(float(a.mean()), rel=1e-6)
    assert act["std"] == pytest.approx(float(a.std()), rel=1e-6)
    assert set(expected_ratio) == {"hidden.0.linear", "hidden.1.linear", "out"}
    for name, ratio in expected_ratio.items():  # over all of the layer's parameters (weight and bias)
        assert row[name]["update_ratio"] == pytest.approx(ratio, rel=1e-9), name
    assert row["<input>"]["std"] == pytest.approx(float(x.std()))


def test_activation_statistics_combine_every_call_of_the_step():
    """SharedTwice runs its Tanh three times a step: mean, std, saturated and inactive fractions are over the
    samples of all three calls (each metric's `combine`), checked against the calls' inputs taken by a hook."""
    model = build("shared")
    with torch.no_grad():
        model.inp.weight.mul_(6.0)  # large pre-activations: some saturation on the first call
    x, y = inputs_for("shared"), torch.tensor([0, 1, 2, 1, 0])
    seen = []
    handle = model.act.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    handle.remove()
    z = torch.cat(seen)  # (3 calls x 5 samples, 8 units)
    a, slope = torch.tanh(z), 1 - torch.tanh(z) ** 2  # tanh' = 1 - tanh^2, max 1 at 0
    act = probe.trace.at(0)["act"]
    assert len(seen) == 3 and act["calls"] == 3.0
    assert act["mean"] == pytest.approx(float(a.mean()), rel=1e-9)
    assert act["std"] == pytest.approx(float(a.std()), rel=1e-9)
    assert act["saturated_fraction"] == pytest.approx(float((slope < 0.05).double().mean()), abs=1e-12)
    assert 0 < act["saturated_fraction"] < 1
    assert act["dead_fraction"] == pytest.approx(float((slope == 0).all(0).double().mean()), abs=1e-12)


def test_update_ratio_equals_parameter_change():
    """update_ratio = ||W_before - W_after|| / ||W_before|| over the layer's parameters (weight and bias),
    computed by hand from copies taken around `optimizer.step()`; Adam, so the step is not the plain
    lr * grad of the SGD oracle above."""
    torch.manual_seed(1)
    model = mlp(5, 2, depth=2, width=4, activation="tanh", init="xavier").double()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 2, (8,))
    with Probe(model, opt) as probe:
        for _ in range(2):  # the second step: Adam's moments are no longer zero
            before = {name: [p.detach().clone() for p in (m.weight, m.bias)] for name, m in layers.items()}
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    row = probe.trace.at(1)
    assert set(layers) == {"hidden.0.linear", "hidden.1.linear", "out"}
    for name, m in layers.items():
        after = [m.weight.detach(), m.bias.detach()]
        change = math.sqrt(sum(float((a - b).norm()) ** 2 for a, b in zip(after, before[name])))
        size = math.sqrt(sum(float(b.norm()) ** 2 for b in before[name]))
        assert change > 0
        assert row[name]["update_ratio"] == pytest.approx(change / size, rel=1e-6), name


def all_hooks(model, optimizer=None):
    count = 0
    for m in model.modules():
        count += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        count += len(getattr(m, "_backward_pre_hooks", {}))
    if optimizer is not None:
        count += len(optimizer._optimizer_step_pre_hooks) + len(optimizer._optimizer_step_post_hooks)
    return count


class Boom(Exception):
    pass


def test_no_hook_survives_the_with_block_even_on_exceptions():
    rng = random.Random(7)
    model = build("mlp").float()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(5, 10), torch.tensor([0, 1, 2, 1, 0])
    for trial in range(25):
        raise_at = rng.randrange(5)
        every = rng.choice([1, 2, 3])
        try:
            with Probe(model, opt, every=every) as probe:
                for step in range(4):
                    if raise_at == 0 and step == 2:
                        raise Boom
                    out = model(x)
                    if raise_at == 1 and step == 1:
                        raise Boom
                    nn.functional.cross_entropy(out, y).backward()
                    if raise_at == 2 and step == 3:
                        raise Boom
                    opt.step()
                    opt.zero_grad()
                if raise_at == 3:
                    raise Boom
        except Boom:
            pass
        assert all_hooks(model, opt) == 0, trial
        assert probe.hooks_attached == 0


def test_gradient_accumulation_records_one_step_per_optimizer_step():
    model = build("mlp")
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: weights fixed, so brute force applies
    xs = [inputs_for("mlp") + k for k in range(3)]
    y = torch.tensor([0, 1, 2, 1, 0])
    with Probe(model, opt) as probe:
        for _ in range(2):
            for x in xs:
                nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    assert probe.trace.steps() == [0, 1]
    row = probe.trace.at(1)
    assert row["hidden.0.linear"]["calls"] == 3.0
    expected = [brute_force(model, x, y)[("hidden.1.act", "output_grad_norm")] for x in xs]
    assert row["hidden.1.act"]["output_grad_norm"] == pytest.approx(math.sqrt(sum(e * e for e in expected)), rel=1e-6)


def test_every_n_attaches_hooks_only_on_sampled_steps():
    model = build("mlp").float()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(5, 10), torch.tensor([0, 1, 2, 1, 0])
    attached = []
    with Probe(model, opt, every=4) as probe:
        for _ in range(9):
            attached.append(all_hooks(model) > 0)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    assert attached == [True, False, False, False, True, False, False, False, True]
    assert probe.trace.steps() == [0, 4, 8]


def test_no_grad_passes_record_nothing_and_do_not_fail():
    model = build("mlp").float()
    x, y = torch.randn(5, 10), torch.tensor([0, 1, 2, 1, 0])
    with Probe(model) as probe:
        with torch.no_grad():
            model(x)
        probe.step()
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    assert probe.trace.steps() == [1]
    assert "calls" not in probe.trace.at(1)["hidden.0.linear"]


def test_inplace_activation_is_watched_through_a_tensor_hook():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2)).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (8,))
    expected = brute_force(model, x, y)
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    assert probe.trace.at(0)["1"]["output_grad_norm"] == pytest.approx(expected[("1", "output_grad_norm")], rel=1e-6)


def test_overflow_is_exploding_with_step_and_layer_named():
    torch.manual_seed(0)
    model = mlp(10, 3, depth=8, width=32, activation="relu", init="normal")
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            layer.weight.data *= 1e4
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 10), torch.randint(0, 3, (16,))
    born = first_nonfinite_output(model, x)  # brute force at step 0: every module's output, checked
    with Probe(model, opt) as probe:
        for _ in range(2):
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    d = gradvet.diagnose(probe)
    assert d.verdict == "exploding"
    assert d.nonfinite is not None and d.nonfinite.step == 0
    assert (d.nonfinite.forward_layer, d.nonfinite.in_input) == (born, False)
    assert "NaN or Inf" in d.cause and f"first non-finite in the forward pass at {born!r}" in d.cause
    assert "clip" in d.remedies[0].action


def first_nonfinite_output(model, x) -> str:
    """Brute force: the first module, in the order they run, whose output holds a NaN/Inf."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.append((n, bool(torch.isfinite(o).all()))))
             for n, m in model.named_modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return next(n for n, finite in seen if not finite)


@pytest.mark.parametrize("activation,init,depth,verdict", [
    ("relu", "xavier", 30, "vanishing"),
    ("relu", "he", 30, "healthy"),
    ("sigmoid", "xavier", 10, "vanishing"),
    ("sigmoid", "nielsen", 10, "vanishing"),
    ("tanh", "xavier", 10, "healthy"),
])
def test_verdicts_at_initialisation(activation, init, depth, verdict):
    from gradvet.data import load

    data = load("digits")
    torch.manual_seed(0)
    model = mlp(64, 10, depth, 64, activation, init)
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(data.x_train[:256]), data.y_train[:256]).backward()
        probe.step()
    d = gradvet.diagnose(probe)
    assert d.verdict == verdict, d.cause
    assert d.to_dict()["verdict"] == verdict and '"verdict"' in d.to_json()
    assert "<table>" in render_html(d)
    if (activation, init) == ("relu", "xavier"):  # level weight gradients must not fool it
        assert any("weight-gradient norms are level" in n for n in d.notes)
        assert d.remedies[0].action.startswith("use init he")
        assert d.forward_ratio < 1e-2
    if activation == "sigmoid":
        assert "sigmoid' <= 0.25" in d.cause
        assert d.remedies[0].action.startswith("use relu")


def test_telescoping_factors_reproduce_the_ratio():
    torch.manual_seed(2)
    model = mlp(12, 4, depth=6, width=20, activation="sigmoid", init="xavier")
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(torch.randn(32, 12)), torch.randint(0, 4, (32,))).backward()
        probe.step()
    d = gradvet.diagnose(probe)
    assert d.activation_factor * d.weight_factor == pytest.approx(d.ratio, rel=1e-4)


def test_trace_exports(tmp_path):
    model = build("mlp").float()
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(torch.randn(5, 10)), torch.tensor([0, 1, 2, 1, 0])).backward()
    frame = probe.trace.to_pandas()
    assert list(frame.columns) == ["step", "layer", "metric", "value"] and len(frame) == len(probe.trace)
    csv_path = probe.trace.to_csv(tmp_path / "t.csv")
    assert csv_path.read_text().splitlines()[0] == "step,layer,metric,value"
    back = gradvet.Trace.from_json(probe.trace.to_json(tmp_path / "t.json"))
    assert back.rows == probe.trace.rows
    assert back.kinds["hidden.0.linear"] == "weight" and back.kinds["hidden.0.act"] == "activation"
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(GradvetError, match="pip install"):
            probe.trace.to_tensorboard(tmp_path / "tb")
    else:
        assert any((tmp_path / "tb").iterdir()) if probe.trace.to_tensorboard(tmp_path / "tb") else False


def test_bad_input_is_clear():
    with pytest.raises(GradvetError, match="nn.Module"):
        Probe("not a model")
    with pytest.raises(GradvetError, match="every=0"):
        Probe(nn.Linear(2, 2), every=0)
    with pytest.raises(GradvetError, match="no parameters"):
        with Probe(nn.Sequential(nn.ReLU())):
            pass
    with pytest.raises(GradvetError, match="recorded no step"):
        gradvet.diagnose(gradvet.Trace())
