"""`gradvet.choose`: the activation recommender, measured on the user's architecture."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error
from rich.console import Console
from typer.testing import CliRunner

from gradvet.activations import activation
from gradvet.base.errors import GradvetError
from gradvet.choose import (
    CONFIRMED,
    DEFAULT_CANDIDATES,
    NOT_HERE,
    NOT_MEASURED,
    CandidateResult,
    Choice,
    SeedResult,
    choose,
    keep_order,
    match_init,
    split_candidates,
)
from gradvet.cli import app
from gradvet.data import load as load_data
from gradvet.models import mlp
from gradvet.report import choice_view

choose_module = sys.modules["gradvet.choose"]  # the attribute gradvet.choose is the function
runner = CliRunner()
DEEP = dict(depth=20, width=32, candidates=["relu", "leaky_relu", "tanh", "sigmoid"], steps=150, seeds=1, budget=300)


@pytest.fixture(scope="module")
def deep() -> Choice:
    return choose(**DEEP)


def independent_ratio(act: str, init: str, depth: int, width: int, seed: int) -> float:
    """||dL/dz_1|| / ||dL/dz_L|| over the hidden Linear outputs z_l, with plain autograd (no Probe),
    on the model `choose` trains (same seed) and the probe batch (torch.randint, seeded generator)."""
    data = load_data("digits")
    model = mlp(data.n_features, data.n_classes, depth, width, act, init, seed=seed)
    n = data.x_train.shape[0]
    idx = torch.randint(0, n, (128,), generator=torch.Generator().manual_seed(seed))
    outputs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    hooks = [block.linear.register_forward_hook(keep) for block in model.hidden]
    loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
    loss.backward()
    for h in hooks:
        h.remove()
    first, last = outputs[0].grad, outputs[-1].grad
    return float(first.double().norm() / last.double().norm())


def test_deep_mlp_ranks_relu_family_above_sigmoid_with_a_measured_reason(deep):
    sig = deep.row("sigmoid")
    relus = [r for r in deep.rows if r.family == "relu"]
    assert relus and min(r.rank for r in relus) < sig.rank
    assert sig.ratio < 1e-2  # depth 20: the backward signal vanishes through sigmoid
    from gradvet.probe.diagnosis import short_number

    assert f"first-layer gradient {short_number(sig.ratio)} of the last" in sig.reason
    assert sig.ratio == pytest.approx(independent_ratio("sigmoid", "xavier", 20, 32, 0), rel=1e-4)
    relu = deep.row("relu")
    assert relu.ratio == pytest.approx(independent_ratio("relu", "he", 20, 32, 0), rel=1e-4)
    assert [r.rank for r in deep.rows] == [1, 2, 3, 4] and deep.winner == deep.rows[0].name
    assert [r.score for r in deep.rows] == sorted((r.score for r in deep.rows), reverse=True)


def test_score_is_the_documented_formula(deep):
    fastest = min(r.step_time for r in deep.rows)
    for r in deep.rows:
        decades = min(abs(math.log10(r.ratio)), 10.0)
        expected = (r.quality - 0.02 * decades - 0.1 * r.dead_fraction
                    - 0.1 * max(0.0, r.saturated_fraction - 0.5) / 0.5
                    - 0.02 * max(0.0, math.log2(r.step_time / fastest) - 0.5))
        assert r.score == pytest.approx(expected, abs=1e-12), r.name
        assert r.quality == pytest.approx(r.seeds[0].accuracy) and 0 <= r.quality <= 1


def test_theory_numbers_match_closed_forms(deep):
    relu, tanh, sig = deep.row("relu").theory, deep.row("tanh").theory, deep.row("sigmoid").theory
    # ReLU at He variance: chi1 = 2 * E[relu'^2] = 1 at every q, so the predicted profile is flat.
    assert relu.sw2 == 2.0 and relu.chi1 == pytest.approx(1.0, abs=1e-9)
    assert relu.predicted_ratio == pytest.approx(1.0, abs=1e-9) and relu.verdict == "stable"
    # tanh at sw2 = 1, sb2 = 0: q* = 0 and chi1 = tanh'(0)^2 = 1.
    assert tanh.chi1 == pytest.approx(1.0, abs=1e-6)
    # sigmoid: sigma' <= 1/4 per layer, so delta_1/delta_L <= (1/4)^19 even before the weights.
    assert sig.predicted_ratio < 0.25**19 * 4**5 and sig.verdict == "vanishing" and sig.phase == "ordered"


def test_rules_on_the_deep_mlp(deep):
    """Depth 20: sigmoid's gradient vanishes and it does not learn in 150 steps, ReLU does; the evidence
    cites the numbers of the rows."""
    marks = {r.number: r.mark for r in deep.rules}
    assert marks[1] == CONFIRMED and marks[3] == CONFIRMED
    assert all(m in (CONFIRMED, NOT_HERE) for m in marks.values())  # every candidate the rules need was run
    sig = deep.row("sigmoid")
    assert f"{sig.quality:.3f}" in deep.rule(1).evidence and f"{sig.quality:.3f}" in deep.rule(2).evidence


def rule_marks(*rows) -> dict[int, str]:
    return {r.number: r.mark for r in choose_module.check_rules(list(rows), depth=10)}


def test_rules_on_hand_made_rows():
    """Rows made by hand whose marks are evident from the rules' wording (module docstring)."""
    article = [synthetic("relu", 0.95, 1.0, 2.3, 0.1), synthetic("leaky_relu", 0.96, 1.0, 2.3, 0.1),
               synthetic("tanh", 0.80, 0.1, 2.3, 0.5, family="tanh"),
               synthetic("sigmoid", 0.11, 1e-6, 2.3, 2.3, family="sigmoid")]
    assert rule_marks(*article) == {1: CONFIRMED, 2: CONFIRMED, 3: CONFIRMED, 4: CONFIRMED}  # relu 0.01 off the best
    upside_down = [synthetic("relu", 0.60, 1.0, 2.3, 1.0), synthetic("leaky_relu", 0.62, 1.0, 2.3, 1.0),
                   synthetic("tanh", 0.50, 0.5, 2.3, 1.0, family="tanh"),
                   synthetic("sigmoid", 0.95, 0.5, 2.3, 0.1, family="sigmoid")]
    assert rule_marks(*upside_down) == {1: NOT_HERE, 2: NOT_HERE, 3: NOT_HERE, 4: NOT_HERE}
    assert rule_marks(synthetic("tanh", 0.9, 1.0, 2.3, 0.1, family="tanh")) == dict.fromkeys((1, 2, 3, 4), NOT_MEASURED)
    # rule 1 needs a ReLU-family row, not relu itself; rule 4 needs relu itself
    marks = rule_marks(synthetic("gelu", 0.9, 1.0, 2.3, 0.1), synthetic("sigmoid", 0.5, 0.5, 2.3, 1.0, family="sigmoid"))
    assert marks == {1: CONFIRMED, 2: NOT_MEASURED, 3: NOT_HERE, 4: NOT_MEASURED}
    # "beats" is strict: a tie is not a win
    tie = [synthetic("relu", 0.9, 1.0, 2.3, 0.1), synthetic("sigmoid", 0.9, 1e-3, 2.3, 0.1, family="sigmoid"),
           synthetic("tanh", 0.9, 1.0, 2.3, 0.1, family="tanh")]
    assert rule_marks(*tie) == {1: NOT_HERE, 2: NOT_HERE, 3: CONFIRMED, 4: CONFIRMED}
    # rule 3: a ratio that is not a number does not confirm a vanishing gradient; 1e-2 itself is not below 1e-2
    assert rule_marks(synthetic("sigmoid", 0.5, math.nan, 2.3, 1.0, family="sigmoid"))[3] == NOT_HERE
    assert rule_marks(synthetic("sigmoid", 0.5, 1e-2, 2.3, 1.0, family="sigmoid"))[3] == NOT_HERE
    assert rule_marks(synthetic("sigmoid", 0.5, 0.99e-2, 2.3, 1.0, family="sigmoid"))[3] == CONFIRMED
    # rule 4: two points off the best (9 of 450 test examples) is within; 2.5 points is not
    for relu_quality, mark in ((0.93, CONFIRMED), (0.925, NOT_HERE), (0.95, CONFIRMED)):
        rows = [synthetic("relu", relu_quality, 1.0, 2.3, 0.1), synthetic("gelu", 0.95, 1.0, 2.3, 0.1)]
        assert rule_marks(*rows)[4] == mark, relu_quality
    assert rule_marks(synthetic("relu", 441 / 450, 1.0, 2.3, 0.1), synthetic("gelu", 450 / 450, 1.0, 2.3, 0.1))[4] \
        == CONFIRMED


def test_outputs_json_rich_and_html(deep):
    data = json.loads(deep.to_json())  # strict JSON: no NaN literals
    assert data["ranking"] == [r.name for r in deep.rows] and data["winner"] == deep.winner
    assert data["weights"]["gradient_per_decade"] == 0.02
    assert {r["mark"] for r in data["rules"]} <= {CONFIRMED, NOT_HERE, NOT_MEASURED}
    con = Console(record=True, width=200)
    con.print(choice_view.render(deep))
    text = con.export_text()
    assert "sigmoid" in text and "rules" in text and deep.budget_note[:20] in text
    page = choice_view.render_html(deep)
    assert page.startswith("<div>") and "<table>" in page and "sigmoid" in page
    assert "loss flat" in deep.row("sigmoid").reason and "-&gt;" in page and "->" not in page  # escaped


def test_seeds_average_and_each_probe_is_reproducible():
    c = choose(depth=3, width=8, candidates=["tanh"], steps=10, seeds=2, budget=300)
    row = c.row("tanh")
    assert [s.seed for s in row.seeds] == [0, 1]
    ratios = [independent_ratio("tanh", "xavier", 3, 8, seed) for seed in (0, 1)]
    assert [s.ratio for s in row.seeds] == pytest.approx(ratios, rel=1e-4)
    assert row.ratio == pytest.approx(math.sqrt(ratios[0] * ratios[1]), rel=1e-4)
    accs = [s.accuracy for s in row.seeds]
    assert row.quality == pytest.approx(sum(accs) / 2)
    assert row.quality_sd == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2))  # sample sd of two values


def synthetic(name, quality, ratio, loss_start, loss_end, step_time=1e-3, sd=None, family="relu"):
    row = CandidateResult(name=name, family=family, init="he")
    row.seeds = [SeedResult(0, ratio, 0.0, 0.0, quality, quality, 1.0, loss_start, loss_end, step_time, "done", 1.0)]
    row.summarise()
    row.quality_sd = sd
    return row


def test_reasons_cite_the_largest_effects_first():
    rows = [synthetic("a", 0.95, 1.0, 2.3, 0.1), synthetic("b", 0.90, 1e-6, 2.3, 2.2, step_time=4e-3),
            synthetic("c", 0.20, 1.0, 2.3, 50.0)]
    choose_module._rank(rows, "accuracy", 100)
    a, b, c = rows
    assert [r.name for r in rows] == ["a", "b", "c"] and a.reason.startswith("best: accuracy 0.950")
    # b: 0.12 for six decades of gradient ratio, 0.05 below a, 0.5 * 0.02 for a step 4x the fastest
    assert b.reason.split("; ")[0] == "first-layer gradient 1.0e-06 of the last (vanishing)"
    assert "loss flat over 100 steps (2.3 -> 2.2)" in b.reason and "4.0x the fastest step time" in b.reason
    assert b.penalties["cost"] == pytest.approx(0.02 * (2 - 0.5))
    assert "loss rose over 100 steps (2.3 -> 50)" in c.reason and "flat" not in c.reason


def test_rules_say_when_a_difference_is_within_the_seed_spread():
    rows = [synthetic("relu", 0.95, 1.0, 2.3, 0.1, sd=0.02), synthetic("sigmoid", 0.94, 1e-3, 2.3, 1.0, sd=0.01,
                                                                       family="sigmoid")]
    rules = choose_module.check_rules(rows, depth=10)
    assert rules[0].mark == CONFIRMED and "within the seed spread" in rules[0].evidence
    assert "0.950 +- 0.020" in rules[0].evidence
    assert rules[2].mark == CONFIRMED and rules[3].mark == CONFIRMED  # 1e-3 < 1e-2; relu is the best
    assert [r.mark for r in rules][1] == NOT_MEASURED
    assert choose_module.within_spread(rows[0], rows[1])
    rows[1].quality = 0.90
    assert not choose_module.within_spread(rows[0], rows[1])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_budget_cuts_seeds_then_candidates_by_work_done(monkeypatch):
    clock = FakeClock()
    real_train = choose_module._train
    runs = []

    def train(spec, data):  # every training run costs 1 s of the fake clock
        clock.now += 1.0
        runs.append(spec.activation)
        return real_train(spec, data)

    monkeypatch.setattr(choose_module, "_clock", clock)
    monkeypatch.setattr(choose_module, "_train", train)
    small = dict(depth=2, width=8, steps=5)
    c = choose(**small, seeds=2, budget=4.5)
    order = keep_order(list(DEFAULT_CANDIDATES))
    assert order[:3] == ["relu", "sigmoid", "tanh"]
    assert c.ranking and sorted(c.ranking) == sorted(order[:4]) and c.cut == order[4:]
    assert len(runs) == 4 and clock.now <= c.budget and c.work == pytest.approx(4.0)
    assert all(len(r.seeds) == 1 for r in c.rows)
    assert "measured 4 of 10 candidates with 1 seed (2 asked)" in c.budget_note
    assert "cut: " + ", ".join(order[4:]) in c.budget_note

    runs.clear()
    clock.now = 0.0
    c = choose(**small, candidates="relu,tanh,sigmoid,gelu", seeds=2, budget=6.5)  # 8 runs do not fit, 4 do
    assert sorted(c.ranking) == ["gelu", "relu", "sigmoid", "tanh"] and not c.cut and len(runs) == 4
    assert "with 1 seed (2 asked)" in c.budget_note

    runs.clear()
    clock.now = 0.0
    c = choose(**small, candidates="relu,tanh,sigmoid,gelu", seeds=2, budget=8.5)
    assert len(runs) == 8 and all(len(r.seeds) == 2 for r in c.rows) and "(2 asked)" not in c.budget_note


def test_a_budget_below_one_run_measures_one_candidate_with_fewer_steps():
    c = choose(depth=2, width=8, steps=50, seeds=2, budget=1e-3)
    assert c.ranking == ["relu"] and len(c.cut) == len(DEFAULT_CANDIDATES) - 1
    assert c.steps == choose_module.MIN_STEPS and c.steps_asked == 50
    assert "measured 1 of 10 candidates with 1 seed (2 asked)" in c.budget_note
    assert "steps cut from 50 to 10" in c.budget_note


@pytest.mark.parametrize("task,output", [("binary", "sigmoid"), ("multiclass", "softmax"), ("regression", "identity")])
def test_output_advice_per_task(task, output):
    c = choose(depth=1, width=4, candidates=["relu"], steps=5, seeds=1, task=task)
    assert c.task == task and c.output_activation == output
    assert output in c.output_advice
    assert ("is multiclass" in c.output_advice) == (task != "multiclass")  # digits is multiclass
    assert [r.mark for r in c.rules] == [NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, CONFIRMED]
    assert c.init_advice.startswith("he ")


def test_task_defaults_to_the_dataset_and_regression_scores_r2(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    path = tmp_path / "binary.npz"
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    c = choose(depth=2, width=8, data=str(path), candidates=["relu"], steps=20, seeds=1)
    assert c.task == "binary" and c.output_activation == "sigmoid"
    path = tmp_path / "regression.npz"
    np.savez(path, x=x, y=(x[:, :1] * 2).astype(np.float32))
    c = choose(depth=2, width=8, data=str(path), candidates=["tanh"], steps=50, seeds=1)
    assert c.task == "regression" and c.output_activation == "identity" and c.quality_name == "R2"
    data = load_data(str(path))
    row = c.row("tanh")
    r2 = 1 - row.test_loss / float(data.y_test.double().var(unbiased=False))
    assert row.quality == pytest.approx(max(0.0, r2)) and row.accuracy is None


def test_batch_norm_is_kept_and_theory_flagged():
    c = choose(depth=6, width=16, candidates=["sigmoid"], norm="batch", steps=10, seeds=1)
    assert c.norm == "batch" and c.norm_advice.startswith("keep batch normalisation")
    assert not c.row("sigmoid").theory.applies and "plain chain" in c.row("sigmoid").theory.text
    con = Console(record=True, width=200)
    con.print(choice_view.render(c))
    assert "* theory for the same chain without normalisation" in con.export_text()


def test_inits_and_candidate_parsing():
    assert [match_init(activation(n)) for n in ("relu", "gelu", "selu", "tanh", "softsign", "sigmoid")] == \
        ["he", "he", "lecun", "xavier", "xavier", "xavier"]
    assert match_init(activation("tanh(x)")) == "critical"  # a formula with an edge of chaos (sw2 = 1)
    assert match_init(activation("x*tanh(softplus(x))")) == "lsuv"  # mish as a formula: none at sb2 = 0
    assert split_candidates("relu, max(x, 0.1*x),tanh,") == ["relu", "max(x, 0.1*x)", "tanh"]
    assert keep_order(["gelu", "tanh", "elu", "relu"]) == ["relu", "tanh", "gelu", "elu"]


def test_a_formula_candidate_is_measured_with_its_init():
    c = choose(depth=4, width=16, candidates=["relu", "x*tanh(softplus(x))"], steps=10, seeds=1)
    row = c.row("x*tanh(softplus(x))")
    assert row.init == "lsuv" and row.family == "custom"
    assert row.theory.sw2 is not None and row.theory.sw2 > 0  # read off the LSUV-initialised model


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(candidates=["relu", "sigmoud"]), "did you mean 'sigmoid'"),
    (dict(depth=0), "depth=0"),
    (dict(budget=0), "budget=0"),
    (dict(budget=-5.0), "budget=-5.0"),
    (dict(task="binar"), "did you mean 'binary'"),
    (dict(candidates=[]), "no candidates"),
    (dict(norm="btach"), "did you mean 'batch'"),
    (dict(data="adding"), "sequence task"),
])
def test_bad_input_is_one_sentence(kwargs, fragment):
    args = dict(depth=3, width=8, steps=5, seeds=1) | kwargs
    with pytest.raises(GradvetError) as err:
        choose(**args)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_cli_json_with_the_default_candidates():
    result = runner.invoke(app, ["choose", "--depth", "4", "--width", "32", "--budget", "120", "--steps", "20",
                                 "--seeds", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sorted(data["ranking"]) == sorted(DEFAULT_CANDIDATES) and data["cut"] == []
    assert data["depth"] == 4 and data["width"] == 32 and data["output_activation"] == "softmax"
    assert [r["number"] for r in data["rules"]] == [1, 2, 3, 4]


def test_cli_table_and_bad_candidate():
    result = runner.invoke(app, ["choose", "--depth", "2", "--width", "8", "--steps", "5", "--seeds", "1",
                                 "--candidates", "relu,tanh"])
    assert result.exit_code == 0, result.output
    assert "winner:" in result.stdout and "rules" in result.stdout
    result = runner.invoke(app, ["choose", "--depth", "4", "--width", "32", "--candidates", "relu,sigmoud"])
    assert_user_error(result, "sigmoud", "did you mean 'sigmoid'")
    result = runner.invoke(app, ["choose", "--depth", "4", "--width", "32", "--budget", "0"])
    assert_user_error(result, "budget")
