"""Views live in the report layer: apps and core objects hold plain data, notebooks still show
HTML (through the formatter `gradvet/__init__.py` registers), `print(diagnosis)` is plain text."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from test_choose import independent_ratio

import gradvet
from gradvet.base.errors import GradvetError
from gradvet.choose import choose
from gradvet.experiments.base import Context
from gradvet.experiments.view import FigureData
from gradvet.models import mlp
from gradvet.report.experiment_figures import draw

ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 300  # seconds: generous, a guard against a hang, not a speed goal


def run_python(code: str) -> str:
    """Run `code` in a fresh interpreter with this checkout first on the path; its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=SUBPROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("module", ["gradvet", "gradvet.choose", "gradvet.experiments", "gradvet.demo"])
def test_apps_and_core_objects_do_not_load_the_report_layer(module):
    out = run_python(f"""
        import sys
        import {module}
        print([m for m in sys.modules if m == "gradvet.report" or m.startswith("gradvet.report.")])
    """)
    assert out.strip() == "[]"


# -- a small sigmoid net at initialisation, and its backward signal by plain float64 autograd -----------------
DEPTH, WIDTH = 6, 16


def probed_net():
    """(diagnosis, ||dL/dz_l|| per hidden layer by float64 autograd without the probe, layer names)."""
    torch.manual_seed(0)
    model = mlp(8, 3, DEPTH, WIDTH, "sigmoid", "xavier")
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    with gradvet.Probe(model) as probe:
        torch.nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    diagnosis = gradvet.diagnose(probe)
    model = model.double()
    outputs = []

    def keep(module, inputs, output) -> None:
        output.retain_grad()
        outputs.append(output)

    hooks = [block.linear.register_forward_hook(keep) for block in model.hidden]
    torch.nn.functional.cross_entropy(model(x.double()), y).backward()
    for hook in hooks:
        hook.remove()
    deltas = [float(out.grad.norm()) for out in outputs]
    names = [f"hidden.{i}.linear" for i in range(DEPTH)]
    return diagnosis, deltas, names


@pytest.fixture(scope="module")
def net():
    return probed_net()


class FakeHTMLFormatter:
    """IPython's text/html formatter, as far as gradvet uses it: `for_type_by_name`."""

    def __init__(self) -> None:
        self.registered: dict[tuple[str, str], object] = {}

    def for_type_by_name(self, type_module: str, type_name: str, func) -> None:
        self.registered[(type_module, type_name)] = func


def fake_ipython(formatter: FakeHTMLFormatter) -> types.ModuleType:
    """A module standing for IPython with a running shell (`get_ipython()` not None)."""
    shell = types.SimpleNamespace(display_formatter=types.SimpleNamespace(formatters={"text/html": formatter}))
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell
    return module


def notebook_html(obj, monkeypatch) -> str:
    """The HTML a notebook shows for `obj`: the function gradvet registered for its class, found the way
    IPython finds it (by the class's module and name)."""
    formatter = FakeHTMLFormatter()
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython(formatter))
    gradvet._register_notebook_views()
    key = (type(obj).__module__, type(obj).__name__)
    assert key in formatter.registered, f"nothing registered for {key}"
    return formatter.registered[key](obj)


def cells(row_html: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row_html)]


def test_a_diagnosis_shows_in_a_notebook_as_a_table_of_the_measured_signal(net, monkeypatch):
    diagnosis, deltas, names = net
    page = notebook_html(diagnosis, monkeypatch)
    assert page.startswith("<div>") and f">{diagnosis.verdict}</b>" in page and diagnosis.verdict == "vanishing"
    rows = [cells(r) for r in re.findall(r"<tr>(<td>.*?)</tr>", page)]
    assert [r[0] for r in rows] == names
    for row, delta in zip(rows, deltas):  # ||dL/dz|| and the ratio to the last hidden layer, 3 significant digits
        assert float(row[1]) == pytest.approx(delta, rel=1e-2)
        assert float(row[2]) == pytest.approx(delta / deltas[-1], rel=1e-2)
    remedies = re.findall(r"<li><b>(.*?)</b>", page)
    assert remedies == [html.escape(r.action) for r in diagnosis.remedies] and remedies


def test_print_diagnosis_is_plain_text_with_the_measured_signal(net):
    diagnosis, deltas, names = net
    text = str(diagnosis)
    assert text.startswith("verdict: vanishing at step 0") and "[bold]" not in text and "\x1b[" not in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("hidden.")]
    assert [r[0] for r in rows] == names
    for row, delta in zip(rows, deltas):
        assert float(row[1]) == pytest.approx(delta, rel=1e-2)
        assert float(row[2]) == pytest.approx(delta / deltas[-1], rel=1e-2)
    assert f"cause: {diagnosis.cause}" in text and "remedies, most promising first:" in text
    assert f"  1. {diagnosis.remedies[0].action} - " in text


def test_a_choice_shows_in_a_notebook_with_its_measured_ratio(monkeypatch):
    choice = choose(depth=3, width=8, candidates=["tanh", "relu"], steps=10, seeds=1, budget=300)
    page = notebook_html(choice, monkeypatch)
    rows = [cells(r) for r in re.findall(r"<tr>(<td>.*?)</tr>", page)]
    assert [r[1] for r in rows] == [r.name for r in choice.rows] and {r[1] for r in rows} == {"tanh", "relu"}
    scores = [float(r[3]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # ranked as shown
    assert f"winner: <b>{rows[0][1]}</b>" in page
    tanh = next(r for r in rows if r[1] == "tanh")
    assert float(tanh[5]) == pytest.approx(independent_ratio("tanh", "xavier", 3, 8, 0), rel=0.06)  # 2 digits


def test_the_notebook_hookup_loads_the_report_layer_only_when_an_object_is_shown():
    out = run_python("""
        import json, sys, types
        registered = {}
        class Formatter:
            def for_type_by_name(self, module, name, func):
                registered[(module, name)] = func
        shell = types.SimpleNamespace(display_formatter=types.SimpleNamespace(formatters={"text/html": Formatter()}))
        ipython = types.ModuleType("IPython")
        ipython.get_ipython = lambda: shell
        sys.modules["IPython"] = ipython
        import gradvet
        from gradvet.probe.trace import Trace
        before = [m for m in sys.modules if m.startswith("gradvet.report")]
        rows = [(0, "a", "output_grad_norm", 1e-4), (0, "b", "output_grad_norm", 1.0), (0, "c", "output_grad_norm", 1.0)]
        diagnosis = gradvet.diagnose(Trace(rows, kinds={"a": "weight", "b": "weight", "c": "weight"}))
        page = registered[("gradvet.probe.diagnosis", "Diagnosis")](diagnosis)
        print(json.dumps({"keys": sorted(map(list, registered)), "before": before, "verdict": diagnosis.verdict,
                          "after": "gradvet.report.diagnosis_view" in sys.modules, "page": page}))
    """)
    result = json.loads(out)
    assert result["keys"] == [["gradvet.choose", "Choice"], ["gradvet.probe.diagnosis", "Diagnosis"]]
    assert result["before"] == [] and result["after"]
    assert result["verdict"] == "vanishing" and "<table>" in result["page"]


def test_without_ipython_importing_gradvet_registers_nothing_and_loads_no_ipython():
    out = run_python("""
        import sys
        import gradvet
        gradvet._register_notebook_views()
        print("IPython" in sys.modules)
    """)
    assert out.strip() == "False"


# -- experiments: plain data without a view ------------------------------------------------------------------
def test_an_experiment_without_a_view_prints_nothing_and_writes_no_figure(tmp_path, capsys):
    ctx = Context(name="mini", out=tmp_path)
    ctx.say("[bold]story[/bold]")
    ctx.table("t", ["a", "b"], [[1, 2.5]])
    data = {"runs": {"a run": {"step": [0, 1], "grad_norm": [1.0, 0.5]}}}
    assert ctx.figure("line", "demo.exploding", data) == []
    record = json.loads(ctx.write_json().read_text())
    assert record["figures"] == [] and record["tables"][0]["rows"] == [[1, 2.5]]
    assert ctx.figure_data == [FigureData("line", "demo.exploding", data)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini.json"]
    assert capsys.readouterr().out == ""


def test_a_figure_of_an_unknown_kind_is_one_sentence_naming_it():
    with pytest.raises(GradvetError) as err:
        draw(FigureData("x", "no-such.kind", {}))
    message = str(err.value)
    assert "'no-such.kind'" in message and "demo.exploding" in message and message.count(". ") == 0
