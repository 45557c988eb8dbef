"""The `trainable-depth` experiment (Schoenholz et al. 2017) on a tiny grid: structure, theory
numbers checked against an independent mean-field computation, resuming through the store,
and the behaviour the paper predicts (shallow nets train at every sw2, a deep net far in the
ordered phase does not)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from gradvet import theory
from gradvet.experiments import run_experiment
from gradvet.experiments import trainable_depth as td
from gradvet.report.experiment_view import ExperimentView
from gradvet.sweep.runner import run_sweep

# sw2 = 0.5 is deep in the ordered phase (xi_c ~ 1.2: inputs become indistinguishable within a few
# layers), 1.76 the edge of chaos, 3 chaotic; a 3-layer net is shallower than 6 xi_c everywhere.
SW2 = (0.5, 1.76, 3.0)
SHALLOW, DEEP = 3, 30
TINY = {"QUICK_SW2": SW2, "QUICK_DEPTHS": (SHALLOW, DEEP), "QUICK_WIDTH": 32, "QUICK_STEPS": 200,
        "QUICK_LR": 0.03}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three calls into one store: part of the grid (serially), the whole grid (2 workers: the rest
    is trained), and the whole grid again (everything read back)."""
    out = tmp_path_factory.mktemp("trainable-depth")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TINY.items():
            mp.setattr(td, name, value)
        mp.setattr(td, "QUICK_DEPTHS", (SHALLOW,))
        part = run_experiment("trainable-depth", out=out, quick=True, workers=1)
        mp.setattr(td, "QUICK_DEPTHS", TINY["QUICK_DEPTHS"])
        first = run_experiment("trainable-depth", out=out, quick=True, workers=2, view=ExperimentView())
        again = run_experiment("trainable-depth", out=out, quick=True, workers=2)
    return SimpleNamespace(part=part, first=first, again=again, out=out)


def test_result_json_has_the_grid_and_the_theory(runs):
    ctx = runs.first
    saved = json.loads((runs.out / "trainable-depth.json").read_text())
    assert saved["experiment"] == "trainable-depth" and saved["quick"] is True
    result = saved["result"]
    assert result["sw2"] == list(SW2) and result["depths"] == [SHALLOW, DEEP]
    acc = np.array(result["accuracy"], dtype=float)
    assert acc.shape == (2, len(SW2)) and np.all((acc >= 0) & (acc <= 1))
    assert np.array(result["accuracy_by_seed"]).shape == (2, len(SW2), 1)
    assert np.array(result["diverged"]).shape == (2, len(SW2))
    setup = result["setup"]
    assert (setup["width"], setup["steps"], setup["lr"], setup["sb2"]) == (32, 200, 0.03, 0.05)
    assert setup["diverged_counts_as"] == "chance"
    assert result["critical_sw2"] == pytest.approx(1.761, abs=1e-3)
    assert "6 xi_c" in result["published"]["finding"] and "Schoenholz" in result["published"]["source"]
    assert result["best"] == pytest.approx(acc.max())
    assert result["threshold"] == pytest.approx(result["chance"] + 0.5 * (result["best"] - result["chance"]))
    assert len(result["trainable_depth"]) == len(SW2)
    assert 0.0 <= result["agreement"] <= 1.0
    assert ctx.result["accuracy"] == result["accuracy"]
    titles = [t.title for t in ctx.tables]
    assert any("Test accuracy" in t for t in titles) and any("6 xi_c" in r for t in ctx.tables for r in t.columns)


def test_six_xi_c_equals_theory_and_an_independent_mean_field_computation(runs):
    result = runs.first.result
    for s, six, xi, _chi1 in zip(SW2, result["six_xi_c"], result["xi_c"], result["chi1"]):
        assert six == pytest.approx(6 * theory.depth_scales("tanh", s, 0.05).xi_c, rel=1e-12)
        assert six == pytest.approx(6 * xi, rel=1e-12)
    # Ordered phase: xi_c = -1/log chi1, chi1 = sw2 E[tanh'(sqrt(q*) z)^2], q* the fixed point of
    # q -> sw2 E[tanh(sqrt(q) z)^2] + sb2; here by plain iteration with Gauss-Hermite (numpy only).
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    s = SW2[0]
    q = 1.0
    for _ in range(2000):
        q = s * float(w @ np.tanh(math.sqrt(q) * z) ** 2) + 0.05
    chi1 = s * float(w @ (1 - np.tanh(math.sqrt(q) * z) ** 2) ** 2)
    assert chi1 < 1
    assert result["chi1"][0] == pytest.approx(chi1, rel=1e-6)
    assert result["six_xi_c"][0] == pytest.approx(-6 / math.log(chi1), rel=1e-5)


def test_figures_are_written_and_not_empty(runs):
    paths = runs.first.figures
    assert sorted(p.name for p in paths) == sorted(
        f"trainable-depth-{stem}{ext}" for stem in ("heatmap", "collapse") for ext in (".png", ".svg"))
    for path in paths:
        assert path.exists() and path.stat().st_size > 5000, path
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert b"<svg" in path.read_bytes()[:2000]


def test_runs_resume_and_are_reused_from_the_store(runs):
    n = len(SW2) * 2
    assert (runs.part.trained, runs.part.reused) == (len(SW2), 0)
    assert (runs.first.trained, runs.first.reused) == (n - len(SW2), len(SW2))
    assert (runs.again.trained, runs.again.reused) == (0, n)
    assert runs.again.result["accuracy"] == runs.first.result["accuracy"]
    saved = json.loads((runs.out / "trainable-depth.json").read_text())
    assert (saved["runs_trained"], saved["runs_reused"]) == (0, n)


def test_shallow_nets_train_at_every_sw2_but_a_deep_ordered_net_does_not(runs):
    result = runs.first.result
    acc = np.array(result["accuracy"])
    chance = result["chance"]
    assert 0.09 < chance < 0.12  # digits: 10 balanced classes
    assert np.all(acc[0] > chance + 0.4), acc[0]  # depth 3: well above chance at every sw2
    assert DEEP > 6 * result["xi_c"][0]  # far beyond the ordered net's depth scale ...
    assert acc[1, 0] < chance + 0.05, acc[1, 0]  # ... it stays at chance
    assert acc[1, 1] > chance + 0.4, acc[1, 1]  # at the edge of chaos the same depth trains
    assert result["trainable_depth"][0] == SHALLOW and result["trainable_depth"][1] == DEEP


def test_diverged_runs_count_as_chance_and_the_summaries_can_fail():
    chance = 0.1
    done = SimpleNamespace(status="done", metrics={"test_accuracy": 0.8})
    diverged = SimpleNamespace(status="diverged", metrics={"test_accuracy": 0.35})
    nan = SimpleNamespace(status="done", metrics={"test_accuracy": float("nan")})
    assert [td.accuracy(r, chance) for r in (done, diverged, nan)] == [0.8, chance, chance]
    acc = np.array([[0.9, 0.9, 0.9],   # depth 5
                    [0.1, 0.8, 0.9],   # depth 20
                    [0.1, 0.7, 0.1]])  # depth 50
    depths = [5, 20, 50]
    assert td.trainable_depths(acc, depths, threshold=0.5) == [5, 50, 20]
    assert td.trainable_depths(np.full((3, 1), 0.1), depths, threshold=0.5) == [None]
    # 6 xi_c = 10, 1000, 30: every point on its predicted side, then one point moved across
    assert td.agreement(acc, depths, [10, 1000, 30], threshold=0.5) == 1.0
    assert td.agreement(acc, depths, [10, 1000, 60], threshold=0.5) == pytest.approx(8 / 9)


def test_chance_is_the_most_common_test_class():
    data = SimpleNamespace(y_test=np.array([0, 1, 1, 2, 1, 0, 3, 3]))
    assert td.chance_accuracy(data) == 3 / 8


def test_the_sweep_stores_runs_that_ctx_run_reads_back(tmp_path):
    from gradvet.experiments.base import Context

    ctx = Context(name="trainable-depth", out=tmp_path, quick=True)
    spec = td.net_spec(ctx, 1.5, 2).replace(steps=3)
    assert spec.init == "gaussian:sw2=1.5,sb2=0.05" and spec.activation == "tanh" and spec.eval_every == 0
    summary = run_sweep([spec], ctx.store_path, workers=1, run_fn=td.train_run)
    assert (summary.ran, summary.done) == (1, 1)
    run = ctx.run(spec)
    assert (ctx.reused, ctx.trained) == (1, 0) and run.status == "done"
    assert run.layer_records == []  # trained without a probe
