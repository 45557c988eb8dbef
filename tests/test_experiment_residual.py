"""`residual --quick` and the residual models: each claim against an independent computation (the
closed form of the per-block growth, a Monte-Carlo branch, autograd in float64 with retained
gradients, branch ratios from forward hooks, ranks by numpy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.data import load
from gradvet.experiments import residual_mlp as rm
from gradvet.experiments import residual_transformer as rt
from gradvet.experiments import run_experiment
from gradvet.experiments.residual_runs import snapshot
from gradvet.experiments.residual_theory import branch_gain
from gradvet.models.residual import residual_mlp, token_transformer
from gradvet.report.experiment_view import ExperimentView

# The JSON's documented numbers (module docstring of gradvet.experiments.residual, README), written out here.
MLP_NUMBERS = {"verdict_init", "ratio_init", "growth_measured", "growth_predicted", "predicted_factors_init",
               "branch_ratio_init",
               "first_step_change", "test_accuracy", "diverged_at", "final_loss", "grad_profile_init",
               "branch_profile_init"}
TRANSFORMER_NUMBERS = {f"{k}_{w}" for w in ("init", "trained") for k in (
    "verdict", "ratio", "growth", "branch_spearman", "grad_profile", "branch_profile", "normalisation")} | {
    "test_accuracy", "diverged_at", "final_loss"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_experiment("residual", quick=True, out=tmp_path_factory.mktemp("residual"), view=ExperimentView())


@pytest.fixture(scope="module")
def digits():
    return load("digits")


# -- theory ----------------------------------------------------------------------------------------------
def test_branch_gain_by_monte_carlo():
    """G = a b / 2 = E||W1^T D W2^T g||^2 / ||g||^2, D the ReLU mask of W1 x, for a wide branch."""
    gen = torch.Generator().manual_seed(0)
    n = m = 400
    for a, b in ((2.0, 1.0), (2.0, 2.0), (1.0, 1.0)):
        ratios = []
        for _ in range(20):
            w1 = torch.randn(m, n, generator=gen, dtype=torch.float64) * math.sqrt(a / n)
            w2 = torch.randn(n, m, generator=gen, dtype=torch.float64) * math.sqrt(b / m)
            x, g = (torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(2))
            mask = (w1 @ x > 0).double()
            ratios.append(float((w1.T @ (mask * (w2.T @ g))).square().sum() / g.square().sum()))
        # relative sd of one draw ~ sqrt(5/m + 2/n) = 0.13; of the mean of 20, 0.03: 4 sd
        assert np.mean(ratios) == pytest.approx(branch_gain(a, b), rel=0.12)


def _tolerance(width: int, blocks: int, seeds: int, gain: float = 1.0) -> float:
    """Allowed |log(measured / predicted growth per block)|. Per block the squared gain is 1 + X + C:
    X = ||J_f^T g||^2/||g||^2 = G ||u||^2/E||u||^2 chi2_n/n (u = D W2^T g) has relative variance
    (1 + 5/m)(1 + 2/n) - 1 ~ 7/width, the cross term C = 2 g.J_f^T g/||g||^2 variance 4 G/width: so the
    log of a block's growth, 1/2 log(1 + X + C), has sd s = sqrt(11/width) G/(2 (1 + G)) for one example
    (a batch only lowers it). The mean over (blocks - 1) blocks and the seeds: 4 s/sqrt(count), plus
    Jensen's bias of the log, s^2."""
    s = math.sqrt(11 / width) * gain / (2 * (1 + gain))
    return 4 * s / math.sqrt((blocks - 1) * seeds) + s * s


def test_unscaled_growth_per_block_is_the_prediction(digits):
    depth, seeds = 64, 3
    measured = [rm.measure_at_init("unscaled", depth, digits, seed)[2]["growth_measured"] for seed in range(seeds)]
    predicted = math.sqrt(1 + 1.0 ** 2 * branch_gain(2.0, 1.0))  # sqrt(2): s = 1, He branches
    gap = abs(np.mean(np.log(measured)) - math.log(predicted))
    assert gap <= _tolerance(rm.WIDTH, depth, seeds), (measured, predicted)
    # and it is not the growth of branches with twice the gain (W2 He for a ReLU: G = 2)
    assert abs(np.mean(np.log(measured)) - math.log(math.sqrt(3))) > 5 * _tolerance(rm.WIDTH, depth, seeds)


def test_the_verdicts_at_depth_64(digits):
    verdicts = {key: rm.measure_at_init(key, 64, digits, 0)[2] for key in rm.VARIANTS}
    assert verdicts["unscaled"]["verdict_init"] == "exploding" and verdicts["unscaled"]["ratio_init"] > 1e8
    for key in ("scaled", "zero_init", "fixup", "pre_ln"):
        assert verdicts[key]["verdict_init"] == "healthy", (key, verdicts[key])
    assert verdicts["zero_init"]["ratio_init"] == 1.0  # every block is the identity: the gradient passes unchanged
    assert verdicts["scaled"]["growth_measured"] == pytest.approx(math.sqrt(1 + 1 / 64), rel=_tolerance(64, 64, 1))


def test_the_snapshot_reads_what_autograd_gives(digits):
    """The ratio and per-block gradient norms of a snapshot against retained gradients in float64."""
    model = residual_mlp(64, 10, 16, 32, seed=3).double()
    x, y = digits.x_train[:128].double(), digits.y_train[:128]
    shot = snapshot(model, (x, y), nn.CrossEntropyLoss())
    assert all(p.grad is None for p in model.parameters())  # a snapshot leaves no gradient behind
    outputs = []
    h = model.embed(x)
    for block in model.blocks:
        h = block(h)
        h.retain_grad()
        outputs.append(h)
    nn.CrossEntropyLoss()(model.out(model.norm_out(h)), y).backward()
    norms = [float(o.grad.norm()) for o in outputs]
    np.testing.assert_allclose(shot.stream_grad_norm, norms, rtol=1e-9)
    assert shot.ratio == pytest.approx(norms[0] / norms[-1], rel=1e-9)


# -- the quick experiment ------------------------------------------------------------------------------
def test_pre_ln_branch_ratio_falls_with_depth(quick):
    """Branch ratios of the Pre-LN stack (depth 12, seed 0) from forward hooks in float64, as the JSON
    has them, and Spearman's rho from numpy ranks below 0; the Pre-LN MLP at depth 16 too."""
    depth = max(rt.QUICK_DEPTHS)
    model = rt.build("pre_ln", depth, 0).double()
    ids, _ = rt.reverse_batch(rt.PROBE_BATCH, torch.Generator().manual_seed(rt.PROBE_SEED))
    ratios = []

    def hook(module, args, out):
        ratios.append(float((out - args[0]).norm() / args[0].norm()))

    for layer in model.layers:
        layer.register_forward_hook(hook)
    with torch.no_grad():
        model(ids)
    result = json.loads(quick.json_path.read_text())["result"]["residual"]
    recorded = result["transformer"]["pre_ln"]["depths"][str(depth)]["branch_profile_init"][0]
    np.testing.assert_allclose(recorded, ratios, rtol=1e-4)
    assert _spearman(ratios) < 0
    mlp_ratios = result["mlp"]["pre_ln"]["depths"][str(max(rm.QUICK_DEPTHS))]["branch_profile_init"][0]
    assert _spearman(mlp_ratios) < 0


def _spearman(values) -> float:
    ranks = np.argsort(np.argsort(values))
    return float(np.corrcoef(np.arange(len(values)), ranks)[0, 1])


def test_zero_init_moves_with_depth_and_fixup_does_not(quick):
    mlps = quick.result["residual"]["mlp"]
    small, large = (str(d) for d in rm.QUICK_DEPTHS)
    move = {key: [mlps[key]["depths"][d]["first_step_change"][0] for d in (small, large)] for key in ("zero_init", "fixup")}
    assert move["zero_init"][1] > 2 * move["zero_init"][0]  # 4x the blocks: about 4x the move
    assert move["fixup"][1] < 2 * move["fixup"][0]


def test_the_json_has_the_documented_keys(quick):
    payload = json.loads(quick.json_path.read_text())
    res = payload["result"]["residual"]
    assert set(res) == {"mlp", "transformer", "theory", "settings"}
    assert set(res["mlp"]) == set(rm.VARIANTS) and set(res["transformer"]) == {"post_ln", "pre_ln"}
    for part, numbers, depths in (("mlp", MLP_NUMBERS, rm.QUICK_DEPTHS), ("transformer", TRANSFORMER_NUMBERS, rt.QUICK_DEPTHS)):
        for entry in res[part].values():
            assert set(entry) == {"label", "depths"} and set(entry["depths"]) == {str(d) for d in depths}
            for depth, n in entry["depths"].items():
                assert set(n) == numbers
                assert all(len(v) == payload["seeds"] for v in n.values())
                assert len(n["grad_profile_init"][0]) == int(depth)
    assert res["theory"]["branch_gain"] == branch_gain(2.0, 1.0)
    assert [t["title"].split(" ")[0] for t in payload["tables"]] == ["Residual", "Transformer"]


def test_the_figures_are_written(quick):
    names = {p.name for p in quick.figures}
    stems = ("mlp-profile", "transformer-profile", "branch-ratio")
    assert names == {f"residual-{s}{suffix}" for s in stems for suffix in (".png", ".svg")}
    assert all(p.exists() and p.stat().st_size > 1000 for p in quick.figures)
    assert set(json.loads(quick.json_path.read_text())["figures"]) == names


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_input_is_one_sentence():
    with pytest.raises(GradvetError, match="norm"):
        residual_mlp(8, 2, 2, 8, norm="post")
    with pytest.raises(GradvetError, match="scale"):
        residual_mlp(8, 2, 2, 8, scale=-1.0)
    with pytest.raises(GradvetError, match="heads=3"):
        token_transformer(10, 8, 2, d_model=32, heads=3)
    with pytest.raises(GradvetError, match="adding"):
        run_experiment("residual", data="adding", quick=True, out="/tmp/gradvet-residual-bad-input")
