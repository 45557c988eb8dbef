"""No hidden global effects (issue 13): library calls leave torch's random stream, its thread
count and `sys.path` as they found them, and `import gradvet` loads no heavy package.

The oracles are independent of the code under test: the weights a seed gives are compared
with those of seeding torch by hand (`torch.manual_seed`, as the code did before), the
random stream with its saved state and the next numbers it would have drawn, and the
modules loaded with `sys.modules` of a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import gradvet
from gradvet import GradvetError
from gradvet.checkup import checkup, load_factory
from gradvet.cli import app
from gradvet.data import load
from gradvet.models import build, mlp, rnn
from gradvet.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "scipy", "sklearn", "pandas", "sympy")


def _mid_stream() -> torch.Tensor:
    """Put torch's global generator somewhere in the middle of a stream; its state there."""
    torch.manual_seed(12345)
    torch.rand(7)
    return torch.get_rng_state()


def untouched(call):
    """Run `call` from a mid-stream state; check the stream is where it was and goes on drawing
    the same numbers (state and draws compared with a copy taken beforehand)."""
    before = _mid_stream()
    expected_next = torch.rand(5, generator=torch.Generator().set_state(before))
    result = call()
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(torch.rand(5), expected_next)
    return result


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def by_hand(seed: int, call):
    """What `call` built when the code seeded torch's global generator itself (as before)."""
    torch.manual_seed(seed)
    return call()


# ---- the global random stream ----

_DATA = torch.randn(64, 6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("options", [
    {"init": "he"},
    {"init": "xavier", "norm": "batch"},
    {"init": "orthogonal", "residual": True},
    {"init": "gaussian:sw2=1.5,sb2=0.05", "norm": "layer"},
    {"init": "lsuv", "data": _DATA},
    {"init": "critical", "activation": "tanh"},
])
def test_mlp_with_a_seed_leaves_the_global_stream_and_keeps_its_weights(options):
    options = {"activation": "relu", **options}
    built = untouched(lambda: mlp(6, 3, 4, 8, seed=3, **options))
    assert_same_weights(built, by_hand(3, lambda: mlp(6, 3, 4, 8, **options)))


def test_mlp_without_a_seed_draws_from_the_callers_stream():
    torch.manual_seed(5)
    first = mlp(6, 3, 2, 8)
    torch.manual_seed(5)
    assert_same_weights(first, mlp(6, 3, 2, 8))
    assert not torch.equal(mlp(6, 3, 2, 8).out.weight, first.out.weight)  # the stream moved on


def test_a_refused_mlp_leaves_the_stream_too():
    def refused():
        with pytest.raises(GradvetError, match="norm="):
            mlp(6, 3, 2, 8, norm="group", seed=3)

    untouched(refused)


@pytest.mark.parametrize("kind,init", [("rnn", "orthogonal"), ("rnn", "default"), ("lstm", "default"),
                                       ("gru", "xavier")])
def test_recurrent_builders_leave_the_global_stream_and_keep_their_weights(kind, init):
    built = untouched(lambda: rnn(kind, 2, 1, hidden_size=8, init=init, seed=11))
    assert_same_weights(built, by_hand(11, lambda: rnn(kind, 2, 1, hidden_size=8, init=init)))


def test_rnn_refusing_lsuv_leaves_the_stream():
    def refused():
        with pytest.raises(GradvetError, match="lsuv"):
            rnn("rnn", 2, 1, hidden_size=8, init="lsuv", seed=3)

    untouched(refused)


@pytest.mark.parametrize("spec,sequence", [
    (RunSpec(depth=3, width=8, activation="tanh", init="xavier", seed=9), False),
    (RunSpec(depth=2, width=8, init="lsuv", seed=2**40 + 1), False),
    (RunSpec(data="adding", model="lstm", width=8, init="default", seed=4), True),
    (RunSpec(data="adding", model="rnn", width=8, init="orthogonal", seed=4), True),
])
def test_build_leaves_the_global_stream_and_keeps_its_weights(spec, sequence):
    n_in, n_out = (2, 1) if sequence else (6, 3)
    built = untouched(lambda: build(spec, n_in, n_out, sequence, sample=_DATA))
    if sequence:
        expected = by_hand(spec.seed, lambda: rnn(spec.model, n_in, n_out, spec.width, spec.activation, spec.init))
    else:
        expected = by_hand(spec.seed, lambda: mlp(n_in, n_out, spec.depth, spec.width, spec.activation, spec.init,
                                                  data=_DATA))
    assert_same_weights(built, expected)


def test_the_demos_probe_at_initialisation_leaves_the_stream_and_measures_the_same_net():
    from gradvet.demo import DEPTH, WIDTH, _at_init
    from gradvet.probe import Probe, diagnose

    data = load("digits")
    measured = untouched(lambda: _at_init("sigmoid", "xavier", data))
    model = by_hand(0, lambda: mlp(data.n_features, data.n_classes, DEPTH, WIDTH, "sigmoid", "xavier"))
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(data.x_train[:256]), data.y_train[:256]).backward()
        probe.step()
    expected = diagnose(probe)
    assert [(lay.name, lay.delta) for lay in measured.layers] == [(lay.name, lay.delta) for lay in expected.layers]


def test_training_a_run_leaves_the_global_stream():
    from gradvet.train import run

    untouched(lambda: run(RunSpec(depth=2, width=8, steps=3, eval_every=3, batch_size=16), probe=None))


# ---- the command line: `gradvet diagnose` seeds for a user's factory and gives the stream back ----

FACTORIES = """
    import torch
    from torch import nn

    def with_dropout():
        return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Dropout(0.5), nn.Linear(32, 32), nn.Tanh(),
                             nn.Dropout(0.5), nn.Linear(32, 10))
"""


def test_diagnose_a_users_model_seeds_it_and_gives_the_stream_back(tmp_path, monkeypatch):
    name = "gradvet_effects_dropout"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.chdir(tmp_path)
    try:
        result = untouched(lambda: CliRunner().invoke(app, ["diagnose", "--model", f"{name}:with_dropout",
                                                            "--seed", "7", "--json"]))
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        # by hand: seed torch, build, and check up (the dropout masks come from the same stream)
        from gradvet_effects_dropout import with_dropout

        expected, _ = by_hand(7, lambda: checkup(with_dropout(), load("digits"), seed=7))
    finally:
        sys.modules.pop(name, None)
    assert shown["verdict"] == expected.verdict
    assert [layer["delta"] for layer in shown["layers"]] == pytest.approx([lay.delta for lay in expected.layers],
                                                                          rel=1e-12)


def test_diagnose_a_built_mlp_gives_the_stream_back():
    result = untouched(lambda: CliRunner().invoke(app, ["diagnose", "--depth", "3", "--width", "8", "--json"]))
    assert result.exit_code == 0, result.output


# ---- thread count: set by the command line only ----

def test_properties_and_cost_of_a_fresh_formula_leave_the_thread_count(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    before = torch.get_num_threads()
    act = gradvet.activation("x*tanh(x) + 0.25*x")  # a formula: never cached, always computed
    props = act.properties
    assert props.cost is not None and props.cost > 0
    assert props.max_grad > 1  # f'(x) = tanh + x sech^2 + 1/4 peaks above 1 near x = 1.2
    assert calls == [] and torch.get_num_threads() == before


def test_local_sweep_workers_share_the_cores(tmp_path):
    """`import gradvet` no longer loads torch, so the fork server preloads it: each of the
    `workers` processes runs torch on cpu_count // workers threads, not on every core."""
    from gradvet.sweep import run_sweep
    from gradvet.sweep.store import Store

    specs = [RunSpec(steps=3, seed=s) for s in (20, 21)]
    assert run_sweep(specs, tmp_path / "runs.db", run_fn="ray_fakes:report_threads", workers=2).done == 2
    with Store(tmp_path / "runs.db", create=False) as store:
        threads = [run["metrics"]["torch_threads"] for run in store.runs()]
    assert threads == [max(1, (os.cpu_count() or 1) // 2)] * 2


# ---- sys.path: a user's factory is importable while it loads, and sys.path is as it was after ----

def test_load_factory_leaves_sys_path(tmp_path, monkeypatch):
    (tmp_path / "gradvet_effects_factory.py").write_text(textwrap.dedent("""
        def make():
            import gradvet_effects_helper  # imported when the factory runs: the directory must still be there
            return gradvet_effects_helper.net()
        def broken():
            raise RuntimeError("no")
    """))
    (tmp_path / "gradvet_effects_helper.py").write_text("from torch import nn\ndef net():\n    return nn.Linear(2, 2)\n")
    monkeypatch.chdir(tmp_path)
    here = str(tmp_path)
    assert here not in sys.path
    before = list(sys.path)
    try:
        assert isinstance(load_factory("gradvet_effects_factory:make"), nn.Linear)
        assert sys.path == before
        for target, why in (("gradvet_effects_factory:broken", "raised RuntimeError"),
                            ("gradvet_effects_nothing:make", "cannot import module"),
                            ("gradvet_effects_factory:missing", "no callable")):
            with pytest.raises(GradvetError, match=why):
                load_factory(target)
            assert sys.path == before
        monkeypatch.syspath_prepend(here)  # already importable: left where it is
        with_it = list(sys.path)
        load_factory("gradvet_effects_factory:make")
        assert sys.path == with_it
    finally:
        for name in ("gradvet_effects_factory", "gradvet_effects_helper"):
            sys.modules.pop(name, None)


# ---- a light `import gradvet` ----

LIGHT = """
import json, sys
import gradvet
bare = sorted(sys.modules)
import torch
gradvet.Probe
act = gradvet.activation("relu")
x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
values = (act.fn(x).tolist(), act.grad(x).tolist())
print(json.dumps({"bare": bare, "used": sorted(sys.modules), "values": values}))
"""


def _fresh_python(code: str, home: Path) -> subprocess.CompletedProcess:
    """`code` in a new interpreter (nothing imported yet), its caches in `home`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home), "MPLCONFIGDIR": str(home / "mpl")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_gradvet_a_probe_and_a_lookup_load_no_heavy_package(tmp_path):
    proc = _fresh_python(LIGHT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    for when in ("bare", "used"):
        heavy = sorted({m.split(".")[0] for m in seen[when]} & set(HEAVY))
        assert heavy == [], f"{when}: {heavy}"
    assert "gradvet.experiments" not in seen["used"] and "gradvet.report" not in seen["used"]
    assert seen["values"] == [[0.0, 0.0, 0.0, 0.5, 3.0], [0.0, 0.0, 0.0, 1.0, 1.0]]  # max(x, 0) and its step


NAMES = """
import inspect
import gradvet
import gradvet.cli, gradvet.choose  # the submodule gradvet.choose is loaded: the name stays the function
from gradvet import (Activation, Choice, Diagnosis, GradvetError, Probe, Trace, activation, activations,
                     choose, diagnose, register)
import gradvet.probe, gradvet.choose as also
assert inspect.isfunction(gradvet.choose) and choose is gradvet.choose is also
assert inspect.ismodule(activations) and activations.activation is activation
assert Probe is gradvet.probe.Probe and issubclass(GradvetError, ValueError)
assert set(gradvet.__all__) <= set(dir(gradvet))
try:
    gradvet.no_such_name
except AttributeError as err:
    assert "no_such_name" in str(err)
else:
    raise SystemExit("no AttributeError")
print("ok")
"""


def test_every_public_name_still_imports_and_choose_stays_the_function(tmp_path):
    proc = _fresh_python(NAMES, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
