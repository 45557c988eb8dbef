"""The `activations` and `remedies` experiments: their numbers checked against an independent
computation (autograd on the pre-activations of a model built the same way, f'(z) counted by
hand), never against the probe that produced them."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch import nn

from gradvet.data import load
from gradvet.experiments import activations as act_exp
from gradvet.experiments import run_experiment
from gradvet.models.mlp import mlp
from gradvet.report.experiment_view import ExperimentView
from gradvet.spec import RunSpec
from gradvet.train.result import Run

BATCH = 64  # RunSpec's default batch size: the engine's first (probed) batch


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def remedies(tmp_path_factory):
    return run_experiment("remedies", out=tmp_path_factory.mktemp("remedies"), quick=True, view=ExperimentView())


@pytest.fixture(scope="module")
def activations(tmp_path_factory):
    return run_experiment("activations", out=tmp_path_factory.mktemp("activations"), quick=True,
                          view=ExperimentView())


def first_batch(data, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The engine's first training batch for `seed`: its generator first draws the 512-example
    sample LSUV uses, then the first epoch's shuffle, whose first BATCH indices are the batch."""
    generator = torch.Generator().manual_seed(seed)
    n = data.x_train.shape[0]
    torch.randperm(n, generator=generator)
    idx = torch.randperm(n, generator=generator)[:BATCH]
    return data.x_train[idx], data.y_train[idx]


def at_init(data, activation: str, init: str, depth: int, width: int = 64, norm: str | None = None,
            residual: bool = False, seed: int = 0) -> dict[str, float]:
    """delta_1/delta_L by torch.autograd.grad of the cross-entropy with respect to the first and last
    hidden pre-activations z_l = W_l a_{l-1} + b_l, on the first batch of a model built as the
    engine builds it (torch seeded with the run's seed, then gradvet.models.mlp); plus the
    saturated and dead fractions of f'(z) at the activations' inputs, counted by hand."""
    torch.manual_seed(seed)
    model = mlp(data.n_features, data.n_classes, depth, width, activation, init, norm, residual)
    model.train()
    linear_out: list[torch.Tensor] = []
    act_in: list[torch.Tensor] = []
    hooks = [block.linear.register_forward_hook(lambda m, i, o: linear_out.append(o)) for block in model.hidden]
    hooks += [block.act.register_forward_pre_hook(lambda m, i: act_in.append(i[0].detach())) for block in model.hidden]
    x, y = first_batch(data, seed)
    loss = nn.functional.cross_entropy(model(x), y)
    for h in hooks:
        h.remove()
    first, last = torch.autograd.grad(loss, [linear_out[0], linear_out[-1]])
    slopes = [fprime(activation, z) for z in act_in]
    top = {"sigmoid": 0.25}.get(activation, 1.0)  # max |f'| of the activations checked here
    return {
        "ratio": float(first.norm() / last.norm()),
        "saturated": sum(float((d < 0.05 * top).float().mean()) for d in slopes) / len(slopes),
        "dead": sum(float((d == 0).all(dim=0).float().mean()) for d in slopes) / len(slopes),
    }


def fprime(activation: str, z: torch.Tensor) -> torch.Tensor:
    """|f'(z)| written out: sigmoid' = s (1 - s), relu' = 1 for z > 0 else 0."""
    if activation == "sigmoid":
        s = 1.0 / (1.0 + torch.exp(-z))
        return s * (1.0 - s)
    if activation == "relu":
        return (z > 0).to(z.dtype)
    raise ValueError(activation)


# -- remedies --------------------------------------------------------------------------------------------
EVERY_REMEDY = {"sigmoid", "relu", "tanh", "he", "orthogonal", "lsuv", "batchnorm", "residual", "pretrain", "combined"}


def test_remedies_table_has_every_remedy(remedies):
    (table,) = remedies.tables
    result = remedies.result["remedies"]
    assert set(result) == EVERY_REMEDY
    assert len(table.rows) == len(EVERY_REMEDY)
    assert [row[0] for row in table.rows] == [result[k]["label"] for k in result]
    for column in ("d1/dL at init", "speed at init", "test accuracy", "wall time (s)"):
        assert column in table.columns
    specs = {k: RunSpec.from_dict(v["spec"]) for k, v in result.items()}
    base = specs["sigmoid"]
    assert (base.activation, base.init, base.depth, base.width, base.norm, base.residual) == \
        ("sigmoid", "xavier", 10, 64, None, False)
    assert (specs["relu"].activation, specs["relu"].init) == ("relu", "he")
    assert specs["batchnorm"].norm == "batch" and specs["residual"].residual
    assert {specs[k].init for k in ("he", "orthogonal", "lsuv")} == {"he", "orthogonal", "lsuv"}
    assert specs["pretrain"].pretrain > 0
    combined = specs["combined"]
    assert (combined.activation, combined.init, combined.norm, combined.residual) == ("relu", "he", "batch", True)
    for key, value in result.items():
        assert value["wall_time"] > 0 and 0 <= value["test_accuracy"] <= 1, key
    assert {p.suffix for p in remedies.figures} == {".png", ".svg"}
    assert all(p.exists() for p in remedies.figures)


def test_relu_batch_norm_and_residual_each_lift_the_ratio_more_than_10x(remedies, digits):
    result = remedies.result["remedies"]
    mine = {
        "sigmoid": at_init(digits, "sigmoid", "xavier", 10),
        "relu": at_init(digits, "relu", "he", 10),
        "batchnorm": at_init(digits, "sigmoid", "xavier", 10, norm="batch"),
        "residual": at_init(digits, "sigmoid", "xavier", 10, residual=True),
    }
    assert mine["sigmoid"]["ratio"] < 1e-4  # the failing net: about 1e-6 on digits
    for key in ("relu", "batchnorm", "residual"):
        assert mine[key]["ratio"] > 10 * mine["sigmoid"]["ratio"], key
    for key, numbers in mine.items():  # the experiment's ratio is the one computed here
        assert result[key]["ratio_at_init"] == pytest.approx(numbers["ratio"], rel=1e-3), key


def test_remedies_that_train_beat_the_failing_net(remedies):
    result = remedies.result["remedies"]
    assert result["sigmoid"]["test_accuracy"] < 0.3  # the failing net does not learn in --quick's steps
    for key in ("relu", "batchnorm", "residual", "combined"):
        assert result[key]["test_accuracy"] > 0.7, key
        assert result[key]["first_layer_speed_at_init"] > 1e3 * result["sigmoid"]["first_layer_speed_at_init"], key


# -- activations -----------------------------------------------------------------------------------------
SW2 = {"he": 2.0, "lecun": 1.0, "xavier": 1.0}  # n_in Var(W) of each init for square layers
OTHER = {"he": "xavier", "lecun": "he", "xavier": "he"}  # the standard init each one is measured against


def test_every_activation_trains_with_the_init_that_keeps_its_backward_signal(tmp_path):
    """The init each run of the experiment uses, measured rather than copied: for the ReLU family and
    selu it keeps delta_1/delta_L closer to 1 (in decades) in a wide random net than the other
    standard init (`wide_net_ratio`, float64 autograd on a net built by hand); sigmoid and tanh take
    Xavier (Glorot & Bengio 2010; no init repairs sigmoid's f' <= 1/4)."""
    from test_matching_init import wide_net_ratio

    from gradvet.experiments.base import Context

    ctx = Context(name="activations", out=tmp_path)
    used = {name: act_exp.activation_spec(ctx, name, 16).init for name in act_exp.ACTIVATIONS}
    assert set(used) == {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "softplus"}
    assert used["sigmoid"] == used["tanh"] == "xavier"
    for name, init in used.items():
        if name in ("sigmoid", "tanh"):
            continue
        mine = abs(math.log10(wide_net_ratio(name, SW2[init])))
        other = abs(math.log10(wide_net_ratio(name, SW2[OTHER[init]])))
        assert mine < other, (name, init, mine, other)
    assert set(act_exp.QUICK_ACTIVATIONS) < set(used)


def test_depths_are_the_ones_the_experiment_promises():
    """What users read (the experiment's title, the heading of its run, and the README's table:
    'depth A to B', 'depth A-B') against the depths the full plan runs; the quick plan a subset of them."""
    from pathlib import Path

    from gradvet.experiments.base import EXPERIMENTS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `activations` |"))
    promises = [re.search(r"depth (\d+) to (\d+)", EXPERIMENTS["activations"][0]), re.search(r"depth (\d+)-(\d+)", row)]
    for promise in promises:
        assert promise is not None
        assert (min(act_exp.DEPTHS), max(act_exp.DEPTHS)) == tuple(map(int, promise.groups()))
    assert set(act_exp.QUICK_DEPTHS) <= set(act_exp.DEPTHS)


def test_activations_quick_tables_and_figures(activations):
    result = activations.result["activations"]
    depths = activations.result["depths"]
    assert set(result) == set(act_exp.QUICK_ACTIVATIONS) and len(depths) >= 3
    grid, profile = activations.tables
    assert [(row[0], row[2]) for row in grid.rows] == [(a, d) for a in result for d in depths]
    assert len(profile.rows) == 2 * len(result)
    stems = {p.stem for p in activations.figures}
    assert {"activations-ratio-vs-depth", "activations-accuracy-vs-depth"} <= stems
    assert all(p.exists() for p in activations.figures)
    for by_depth in result.values():
        for depth in depths:
            numbers = by_depth[str(depth)]
            assert len(numbers["profile_at_init"]) == depth and numbers["profile_at_init"][-1] == pytest.approx(1.0)
            assert 0 <= numbers["test_accuracy"] <= 1


@pytest.mark.parametrize("name", ["sigmoid", "relu"])
def test_activation_numbers_at_init_match_autograd(activations, digits, name):
    depth = max(activations.result["depths"])
    reported = activations.result["activations"][name][str(depth)]
    mine = at_init(digits, name, act_exp.INITS[name], depth)
    assert reported["ratio_at_init"] == pytest.approx(mine["ratio"], rel=1e-3)
    assert reported["saturated_fraction_at_init"] == pytest.approx(mine["saturated"], abs=1e-6)
    assert reported["dead_fraction_at_init"] == pytest.approx(mine["dead"], abs=1e-6)
    if name == "sigmoid":
        assert mine["ratio"] < 1e-6  # (1/4)^(depth-1) and Xavier's unit weight gain: vanishes
    else:
        assert 0.1 < mine["ratio"] < 10  # He init keeps the backward signal level


def test_steps_to_target_reads_the_eval_history():
    run = Run(spec=RunSpec(), status="done",
              history={"eval_step": [10, 20, 30], "test_accuracy": [0.5, 0.91, 0.95]})
    assert act_exp.steps_to_target(run, 0.9) == 20
    assert act_exp.steps_to_target(run, 0.96) is None
    measures = [{"steps_to_target": 20}, {"steps_to_target": None}]
    assert act_exp.steps_text(measures) == "20 (1/2 seeds)"
    assert act_exp.steps_text([{"steps_to_target": None}]) == "not reached"
    assert math.isnan(act_exp.summarise([{**m, **_blank()} for m in [{"steps_to_target": None}]])["test_accuracy"])


def _blank() -> dict:
    keys = ("ratio_at_init", "ratio_trained", "test_accuracy", "dead_fraction", "saturated_fraction",
            "dead_fraction_at_init", "saturated_fraction_at_init")
    return {**{k: math.nan for k in keys}, "profile_at_init": [], "profile_trained": [], "diverged_at": None}


def test_activations_rerun_reads_every_run_back_from_the_store(activations):
    again = run_experiment("activations", out=activations.out, quick=True)
    assert again.trained == 0 and again.reused == activations.trained > 0
    same = json.dumps(again.result["activations"], sort_keys=True) == json.dumps(activations.result["activations"],
                                                                                sort_keys=True)
    assert same  # every number, so the layer order too, survives the store
