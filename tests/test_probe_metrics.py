"""Probe metrics as units (issue 13): a new metric is one class, recorded and drawn in every view
without touching another file; the probe asks the catalog only for max |f'|; the thresholds of
the verdict, the flags and the remedies are one set. Each checked against an independent
computation: autograd in float64, closed-form derivatives, or numbers typed from the docs."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from rich.console import Console
from torch import nn

import gradvet
from gradvet import GradvetError, Probe
from gradvet.activations import activation
from gradvet.activations import cache as property_cache
from gradvet.models import mlp
from gradvet.probe import metrics
from gradvet.probe.metrics import Column, Metric, Parts
from gradvet.probe.metrics.output_grad_norm import OutputGradNorm
from gradvet.probe.metrics.unit import MAX, OUTPUT_GRAD
from gradvet.probe.trace import Trace
from gradvet.report import build_page
from gradvet.report.diagnosis_view import render, render_html


class OutputGradMax(Metric):
    """max |dL/d output|: the largest single entry of the backward signal at a weight layer's output."""

    name = "output_grad_max"
    kinds = frozenset({"weight"})
    reads = frozenset({OUTPUT_GRAD})
    combine = MAX
    columns = (Column("output_grad_max", "max |dL/dz|", digits=4),)

    def on_output_grad(self, layer, grad):
        layer.max(self.name, grad.abs().amax())

    def measure(self, layer):
        top = layer.sums.get(self.name)
        return Parts(scalars=[top]) if top is not None else Parts()

    def value(self, got, row, layer):
        return got.scalars[0] if got.scalars else None


@pytest.fixture
def registered():
    metrics.register(OutputGradMax)
    try:
        yield OutputGradMax
    finally:
        metrics.unregister(OutputGradMax.name)


def autograd_output_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          types: tuple[type, ...] = (nn.Linear,)) -> dict[str, torch.Tensor]:
    """dL/d output of every module of `types`, by torch.autograd.grad on the outputs kept by plain forward hooks."""
    outs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o))
             for n, m in model.named_modules() if isinstance(m, types)]
    loss = nn.functional.cross_entropy(model(x), y)
    for h in hooks:
        h.remove()
    return dict(zip(outs, torch.autograd.grad(loss, list(outs.values()))))


def probed_tanh_net():
    torch.manual_seed(0)
    model = mlp(10, 3, depth=4, width=12, activation="tanh", init="xavier").double()
    x = torch.randn(16, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.arange(16) % 3
    expected = autograd_output_grads(model, x, y)
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    return probe, {name: float(g.abs().max()) for name, g in expected.items()}


def terminal_text(diagnosis) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(render(diagnosis))
    return console.file.getvalue()


def test_a_registered_metric_is_recorded_and_drawn_in_every_view(registered):
    probe, expected = probed_tanh_net()
    for layer, value in expected.items():
        assert probe.trace.at(0)[layer]["output_grad_max"] == pytest.approx(value, rel=1e-12)
    d = gradvet.diagnose(probe)
    assert [lay.output_grad_max for lay in d.layers] == pytest.approx([expected[lay.name] for lay in d.layers],
                                                                     rel=1e-12)
    record = d.to_dict()
    assert [lay["output_grad_max"] for lay in record["layers"]] == [lay.output_grad_max for lay in d.layers]
    text = terminal_text(d)
    assert "max |dL/dz|" in text and "flags" in text.split("max |dL/dz|")[1]  # before the flags column
    for lay in d.layers:
        assert f"{lay.output_grad_max:.4g}" in text
    assert "<th>max |dL/dz|</th>" in render_html(d)
    plain = str(d)  # print(diagnosis)
    assert "max |dL/dz|" in plain and all(f"{lay.output_grad_max:.4g}" in plain for lay in d.layers)
    page = build_page(records=[{**record, "model": "tanh MLP", "data": "random", "steps": 0}]).render()
    assert "<th>max |dL/dz|</th>" in page
    for lay in record["layers"]:
        assert f'data-value="{json.dumps(lay["output_grad_max"])}"' in page


def test_without_the_metric_no_record_and_no_column():
    probe, _ = probed_tanh_net()
    assert "output_grad_max" not in probe.trace.metrics()
    d = gradvet.diagnose(probe)
    assert not any("max |dL/dz|" in view for view in (terminal_text(d), render_html(d), str(d)))
    with pytest.raises(AttributeError, match="output_grad_max"):
        d.layers[0].output_grad_max  # noqa: B018


def test_a_probe_records_the_metrics_it_is_given():
    torch.manual_seed(0)
    model = mlp(10, 3, depth=3, width=8, activation="relu", init="he").double()
    x, y = torch.randn(6, 10, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = autograd_output_grads(model, x, y, (nn.Linear, nn.ReLU))
    with Probe(model, metrics=[OutputGradNorm, OutputGradMax]) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    assert set(probe.trace.metrics()) == {"output_grad_norm", "output_grad_max"}
    at = probe.trace.at(0)
    assert set(at) == set(expected) and len(at) == 7  # no '<input>' row: no model-scope metric asked for
    for name, g in expected.items():
        assert at[name]["output_grad_norm"] == pytest.approx(float(g.norm()), rel=1e-12)
        if isinstance(model.get_submodule(name), nn.Linear):  # output_grad_max is measured on weight layers only
            assert at[name]["output_grad_max"] == pytest.approx(float(g.abs().max()), rel=1e-12)
        else:
            assert "output_grad_max" not in at[name]


class Unnamed(Metric):
    pass


class BadKind(OutputGradMax):
    name = "bad_kind"
    kinds = frozenset({"conv"})


class BadData(OutputGradMax):
    name = "bad_data"
    reads = frozenset({"weights"})


class BadSource(OutputGradMax):
    name = "bad_source"
    columns = (Column("bad_source", "bad", source="below"),)


@pytest.mark.parametrize("unit,message", [
    (int, "int'> is not a probe metric; a metric is a subclass of gradvet.probe.metrics.Metric."),
    (Unnamed, "metric Unnamed has name None; a metric's name is a Python identifier."),
    (BadKind, "metric 'bad_kind' has kind 'conv'; allowed: activation, norm, weight."),
    (BadData, "metric 'bad_data' has hook data 'weights'; allowed: finite, input, input_grad, output, output_grad, "
              "params, update."),
    (BadSource, "metric 'bad_source' has column source 'below'; allowed: above, activation, layer."),
])
def test_a_badly_declared_metric_is_refused_in_one_sentence(unit, message):
    for attempt in (lambda: metrics.register(unit), lambda: Probe(nn.Linear(2, 2), metrics=[unit])):
        with pytest.raises(GradvetError) as err:
            attempt()
        assert str(err.value).endswith(message) and str(err.value).count(". ") == 0
    assert unit not in metrics.metrics()


def test_registering_twice_or_removing_a_builtin_is_refused(registered):
    with pytest.raises(GradvetError, match="a layer metric named 'output_grad_max' is registered already"):
        metrics.register(OutputGradMax)
    with pytest.raises(GradvetError, match=r"'gain' is not a registered metric of your own; registered: output_grad_max\."):
        metrics.unregister("gain")
    assert metrics.metrics()[-1].name == "nonfinite"  # a user's metric goes before the one reading the whole row


def test_a_registered_metric_that_overflows_flags_the_layer(registered):
    class Overflow(OutputGradMax):
        name = "overflow"

        def value(self, got, row, layer):
            return math.inf

    metrics.register(Overflow)
    try:
        probe, _ = probed_tanh_net()
    finally:
        metrics.unregister("overflow")
    at = probe.trace.at(0)
    weight_layers = {name for name in at if probe.trace.kinds.get(name) == "weight"}
    assert {name for name in at if "overflow" in at[name]} == weight_layers and len(weight_layers) == 5
    assert {name for name in at if "nonfinite" in at[name]} == weight_layers  # an Inf is an overflow by default
    assert all(at[name]["overflow"] == math.inf for name in weight_layers)
    assert probe.first_nonfinite is not None and probe.first_nonfinite.forward_layer is None


def test_trace_read_back_knows_each_layers_kind():
    """Kinds inferred from the metric names (the units' declarations) match the modules' own types."""
    torch.manual_seed(0)
    model = mlp(10, 3, depth=2, width=8, activation="gelu", init="he", norm="batch")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Probe(model, opt) as probe:
        nn.functional.cross_entropy(model(torch.randn(8, 10)), torch.arange(8) % 3).backward()
        opt.step()
    back = Trace.from_json(probe.trace.to_json())
    by_type = {n: ("norm" if isinstance(m, nn.BatchNorm1d) else "activation" if isinstance(m, nn.GELU) else "weight")
               for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d, nn.GELU))}
    assert back.kinds == by_type


# -- the probe asks the catalog only for max |f'| -------------------------------------------------
@pytest.fixture
def nothing_but_max_grad(tmp_path, monkeypatch):
    """A fresh property cache, and computing all properties or timing the cost fails the test."""
    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path))
    property_cache.clear_memory()

    def refuse(*args, **kwargs):
        raise AssertionError("every property (or the cost) was computed where only max |f'| was needed")

    monkeypatch.setattr("gradvet.activations.properties.compute", refuse)
    monkeypatch.setattr("gradvet.activations.properties.compute_with_cost", refuse)
    monkeypatch.setattr("gradvet.activations.cost.relative_cost", refuse)
    yield
    property_cache.clear_memory()


@pytest.mark.parametrize("name,params,top", [
    ("sigmoid", {}, 0.25),  # s' = s(1 - s), largest at 0
    ("tanh", {}, 1.0),  # 1 - tanh^2
    ("elu", {"alpha": 2.0}, 2.0),  # alpha e^x for x < 0: sup alpha at 0-
    ("softsign", {}, 1.0),  # 1 / (1 + |x|)^2
    ("2*tanh(x)", {}, 2.0),
    ("x*exp(-x**2)", {}, 1.0),  # (1 - 2x^2) e^(-x^2): 1 at 0, -2 e^(-3/2) = -0.446 at x^2 = 3/2
])
def test_max_grad_alone_is_the_closed_form(nothing_but_max_grad, name, params, top):
    act = activation(name, **params)
    assert act.max_grad == pytest.approx(top, rel=1e-9)
    assert "properties" not in act.__dict__


def test_max_grad_alone_equals_the_full_properties(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path))
    property_cache.clear_memory()
    mish = "x*tanh(log(1+exp(x)))"
    alone = activation(mish).max_grad
    assert "properties" not in activation(mish).__dict__
    assert alone == activation(mish).properties.max_grad
    property_cache.clear_memory()


def test_entering_a_probe_computes_only_max_grad(nothing_but_max_grad):
    """A formula activation (no cached properties): the probe's saturated fraction needs max |f'| only."""
    act = activation("2*tanh(x)")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), act.module(), nn.Linear(10, 3)).double()
    with torch.no_grad():
        model[0].weight.mul_(4.0)
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.arange(32) % 3
    z = model[0](x).detach()
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    slope = 2 * (1 - torch.tanh(z) ** 2)  # f' of 2 tanh(x), max 2
    expected = float((slope < 0.05 * 2).double().mean())
    assert probe.trace.at(0)["1"]["saturated_fraction"] == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1
    assert "properties" not in act.__dict__


# -- one home for the thresholds ------------------------------------------------------------------
def hand_trace(saturated: float = 0.0, dead: float | None = None) -> Trace:
    """A healthy 4-hidden-layer net written by hand: every weight layer passes delta = 1 back and every
    activation has the given saturated fraction and persistent dead fraction."""
    rows = [(0, "<input>", "std", 1.0)]
    for i in range(4):
        rows += [(0, f"l{i}", "output_grad_norm", 1.0), (0, f"l{i}", "input_grad_norm", 1.0), (0, f"l{i}", "gain", 1.0),
                 (0, f"l{i}", "weight_grad_norm", 0.1)]
        rows += [(0, f"a{i}", "output_grad_norm", 1.0), (0, f"a{i}", "gain", 1.0), (0, f"a{i}", "mean", 0.1),
                 (0, f"a{i}", "std", 0.5), (0, f"a{i}", "saturated_fraction", saturated),
                 (0, f"a{i}", "dead_fraction", dead or 0.0)]
        rows += [(0, f"a{i}", "persistent_dead_fraction", dead)] if dead is not None else []
    rows += [(0, "out", "output_grad_norm", 1.0), (0, "out", "gain", 1.0), (0, "out", "weight_grad_norm", 0.1)]
    return Trace(rows)


def remedy_about(d, words: str) -> bool:
    return any(words in r.action for r in d.remedies)


@pytest.mark.parametrize("fraction,flagged", [(0.6, True), (0.59, False)])
def test_saturation_flag_and_remedy_share_one_threshold(fraction, flagged):
    """The docs: a layer is flagged saturated, and the net gets the remedy, at 60% saturated (per layer and on
    average alike), where the activation is not of the sigmoid or tanh family."""
    d = gradvet.diagnose(hand_trace(saturated=fraction))
    assert d.verdict == "healthy"
    assert all(("saturated" in lay.flags) == flagged for lay in d.layers)
    assert remedy_about(d, "reduce the scale of the pre-activations") == flagged
    if flagged:
        assert "(|f'(z)| < 5% of its maximum)" in next(r.why for r in d.remedies if "reduce the scale" in r.action)


@pytest.mark.parametrize("fraction,flagged,remedy", [(0.5, True, True), (0.3, False, True), (0.2, False, False)])
def test_dead_units_flag_per_layer_at_one_half_and_remedy_on_average_at_one_quarter(fraction, flagged, remedy):
    d = gradvet.diagnose(hand_trace(dead=fraction))
    assert all(("dead" in lay.flags) == flagged for lay in d.layers)
    assert remedy_about(d, "use leaky_relu") == remedy
