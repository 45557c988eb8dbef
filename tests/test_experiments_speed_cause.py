"""The `speed-of-learning` and `cause` experiments, each number checked against an
independent computation (numpy forward/backward, brute-force counting, autograd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_data import mnist_dir  # noqa: F401  (the small-IDX-files fixture)

from gradvet.base.errors import GradvetError
from gradvet.data import load
from gradvet.experiments import cause, run_experiment
from gradvet.experiments import speed_of_learning as sol
from gradvet.models.build import build
from gradvet.report.experiment_view import ExperimentView
from gradvet.spec import RunSpec
from gradvet.train.optim import make_loss


# -- speed-of-learning ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def speed(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    return run_experiment("speed-of-learning", out=out, quick=True, view=ExperimentView())


def numpy_speeds(model, x: np.ndarray, y: np.ndarray) -> list[float]:
    """||dC/db|| of each hidden layer, C = mean over examples of Nielsen's cross-entropy with
    sigmoid outputs, by a hand-written float64 forward and backward pass."""
    layers = [block.linear for block in model.hidden] + [model.out]
    weights = [layer.weight.detach().double().numpy() for layer in layers]
    biases = [layer.bias.detach().double().numpy() for layer in layers]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    acts = [x]
    for w, b in zip(weights, biases):
        acts.append(sig(acts[-1] @ w.T + b))
    onehot = np.eye(weights[-1].shape[0])[y]
    delta = (acts[-1] - onehot) / len(x)  # dC/dz of the output layer
    speeds = []
    for layer in range(len(weights) - 2, -1, -1):
        a = acts[layer + 1]
        delta = (delta @ weights[layer + 1]) * a * (1.0 - a)
        speeds.append(float(np.linalg.norm(delta.sum(axis=0))))
    return speeds[::-1]


def test_speed_of_learning_reproduces_the_books_shape_on_digits(speed):
    data = load("digits", n_train=sol.N_TRAIN)
    x, y = data.x_train.double().numpy(), data.y_train.numpy()
    assert len(x) == 1000
    for depth in sol.DEPTHS:
        spec = sol.network_spec(depth, "digits", (), epochs=sol.QUICK_EPOCHS, seed=0)
        mine = numpy_speeds(build(spec, 64, 10, False), x, y)
        label = "64-" + "30-" * depth + "10"
        theirs = speed.result["init_speed"][label]
        assert len(theirs) == depth
        np.testing.assert_allclose(theirs, mine, rtol=1e-6, atol=0)
        for i in range(depth - 1):
            assert mine[i + 1] >= 2 * mine[i], (label, mine)
        # the stored training run starts from the same weights: its first probe record (float32)
        curve = speed.result["training"][label]
        assert curve["epoch"][0] == 0 and len(curve["epoch"]) >= 40
        np.testing.assert_allclose([series[0] for series in curve["mean"]], mine, rtol=1e-4)
    assert speed.result["init_check_max_rel_diff"] < 1e-4


def test_speed_of_learning_writes_tables_figures_and_json(speed):
    titles = [t.title for t in speed.tables]
    assert any("at initialisation" in t for t in titles) and any("during training" in t for t in titles)
    init_table = speed.tables[0]
    assert init_table.columns == ["network", "hidden 1", "hidden 2", "hidden 3", "hidden 4", "last/first"]
    assert [row[0] for row in init_table.rows] == ["64-30-30-10", "64-30-30-30-10", "64-30-30-30-30-10"]
    assert not any("Nielsen" in str(row[0]) for row in init_table.rows)  # book rows only beside MNIST
    names = {p.name for p in speed.figures}
    assert {"speed-of-learning-init.png", "speed-of-learning-training.svg"} <= names
    assert all(p.exists() for p in speed.figures)
    assert (speed.out / "speed-of-learning.json").exists()
    setup = speed.result["setup"]
    assert setup["weight_decay"] == pytest.approx(0.005) and setup["epochs"] == sol.QUICK_EPOCHS


def test_speed_of_learning_rerun_reuses_the_store(speed):
    again = run_experiment("speed-of-learning", out=speed.out, quick=True)
    assert again.trained == 0 and again.reused == len(sol.DEPTHS)
    assert again.result["init_speed"] == speed.result["init_speed"]
    assert again.result["training"] == speed.result["training"]


def test_speed_of_learning_prints_the_books_numbers_beside_mnist(tmp_path, mnist_dir):  # noqa: F811
    ctx = run_experiment("speed-of-learning", data="mnist", out=tmp_path, quick=True, mnist_dir=str(mnist_dir))
    rows = {row[0]: row for row in ctx.tables[0].rows}
    assert rows["784-30-30-10 (Nielsen)"][1:3] == [0.07, 0.31]
    assert rows["784-30-30-30-30-10 (Nielsen)"][1:5] == [0.003, 0.017, 0.070, 0.285]
    assert "784-30-30-30-10" in rows
    assert ctx.result["book_init_speed"]["784-30-30-30-10"] == [0.012, 0.060, 0.283]


def test_sigmoid_cross_entropy_is_nielsens_cost():
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2, 1, 1, 0])
    loss = make_loss(RunSpec(loss="sigmoid_cross_entropy"), "multiclass")(logits, target)
    a, y = torch.sigmoid(logits), torch.eye(3, dtype=torch.float64)[target]
    expected = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum() / 5
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    (grad,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(grad, (a - y).detach() / 5)  # the output error a - y
    with pytest.raises(GradvetError, match="regression"):
        make_loss(RunSpec(loss="sigmoid_cross_entropy"), "regression")


# -- cause -------------------------------------------------------------------------------------------------
def brute_force_width(w: float, b: float, step: float = 1e-6) -> float:
    """Width of {a : |w sigma'(wa + b)| >= 1}, counted on a grid around the centre a = -b/w."""
    a = -b / w + np.arange(-1.0, 1.0, step)
    z = w * a + b
    e = np.exp(-np.abs(z))
    return float(np.count_nonzero(abs(w) * e / (1.0 + e) ** 2 >= 1.0) * step)


@pytest.mark.parametrize("w", [4.2, 5.0, 6.9, 10.0, 37.0, 100.0, -8.0])
@pytest.mark.parametrize("b", [0.0, 0.7])
def test_window_formula_matches_a_brute_force_count(w, b):
    assert cause.window_width(w) == pytest.approx(brute_force_width(w, b), abs=5e-6)


@pytest.mark.parametrize("w", [0.5, 1.0, 3.0, 3.99, -2.0])
def test_no_window_below_four(w):
    assert cause.window_width(w) == 0.0
    assert brute_force_width(w, 0.3) == 0.0


def test_window_is_widest_near_6_9():
    best_w, best = cause.widest_window()
    assert best_w == pytest.approx(6.9, abs=0.05)
    assert best == pytest.approx(0.45, abs=0.005)
    assert brute_force_width(best_w, 0.0) == pytest.approx(best, abs=5e-6)
    grid = np.linspace(4.0, 100.0, 5000)
    assert cause.window_width(grid).max() <= best + 1e-9


def test_chain_product_matches_autograd():
    rng = np.random.default_rng(3)
    n, depth = 40, 6
    w, b, x = rng.normal(0, 2, (n, depth)), rng.normal(0, 1, (n, depth)), rng.uniform(size=n)
    chain = cause.scalar_chain(w, b, x)
    for i in range(n):
        bt = torch.tensor(b[i], requires_grad=True)
        a = torch.tensor(x[i], dtype=torch.float64)
        zs = []
        for j in range(depth):
            z = float(w[i, j]) * a + bt[j]
            zs.append(z)
            a = torch.sigmoid(z)
        (grad,) = torch.autograd.grad(a, bt)  # C = a_D, so dC/da_D = 1
        np.testing.assert_allclose(chain["dC_db"][i], grad.numpy(), rtol=1e-10, atol=1e-300)
        z = torch.stack(zs).detach().numpy()
        np.testing.assert_allclose(chain["z"][i], z, rtol=1e-12, atol=1e-12)
        s = 1 / (1 + np.exp(-z))
        np.testing.assert_allclose(chain["factor"][i], w[i] * s * (1 - s), rtol=1e-9, atol=1e-300)


def test_quarter_to_the_depth_bound():
    rng = np.random.default_rng(4)
    for depth in (1, 2, 5, 10):
        small = cause.scalar_chain(rng.uniform(-1, 1, (20_000, depth)), rng.normal(0, 3, (20_000, depth)),
                                   rng.uniform(size=20_000))
        assert np.abs(small["dC_db"][:, 0]).max() <= 0.25 ** depth
        w, b, x = cause.random_chains(20_000, depth, seed=depth)
        assert np.prod(cause.scalar_chain(w, b, x)["act_factor"], axis=-1).max() <= 0.25 ** depth
    boom = cause.exploding_chain(depth=5)
    np.testing.assert_allclose(boom["factor"], 25.0)
    assert boom["dC_db"][0] == pytest.approx(0.25 * 25.0 ** 4)
    assert abs(cause.exploding_chain(depth=5, shift=0.01)["dC_db"][0]) < 1e-6  # off the knife-edge


@pytest.fixture(scope="module")
def why(tmp_path_factory):
    return run_experiment("cause", out=tmp_path_factory.mktemp("cause"), quick=True, view=ExperimentView())


def test_cause_measures_where_the_scalar_chain_misleads(why):
    real = why.result["real_nets"]
    depth, wide = real["depth"], real["widths"][-1]
    nets = {(n["init"], n["width"]): n for n in real["nets"]}
    for (init, width), net in nets.items():
        expected = math.sqrt(width) if init == "normal" else 1.0
        assert net["weight_factor"][0] == pytest.approx(expected, rel=0.15), (init, width)
        assert net["predicted_weight_factor"] == pytest.approx(expected, rel=0.05)
        layers = net["layers"]
        # the per-layer gains telescope: ||dL/dz_j|| = sigma' factor * weight factor above * ||dL/dz_{j+1}||
        for j in range(depth - 1):
            assert layers["dz_norm"][j] == pytest.approx(layers["product"][j] * layers["dz_norm"][j + 1], rel=1e-4)
    normal, nielsen, xavier = nets[("normal", wide)], nets[("nielsen", wide)], nets[("xavier", wide)]
    assert normal["first_last"][0] > 0.1  # the wide N(0,1) net barely vanishes ...
    assert normal["saturated"][0] > 0.5  # ... it saturates instead
    for fan_in in (nielsen, xavier):  # fan-in-scaled inits vanish by orders of magnitude
        assert fan_in["first_last"][0] < 1e-2
        assert normal["first_last"][0] > 100 * fan_in["first_last"][0]
    assert "sqrt(n)" in real["statement"] and "saturate" in real["statement"]


def test_cause_writes_its_tables_figures_and_reuses_the_store(why):
    assert why.result["window"]["widest_w"] == pytest.approx(6.9, abs=0.05)
    np.testing.assert_allclose(why.result["window"]["counted"], why.result["window"]["width"], atol=2e-5)
    assert why.result["exploding"]["factor"] == [25.0] * cause.CHAIN_DEPTH
    assert {"cause-window.png", "cause-window.svg", "cause-real-nets.png"} <= {p.name for p in why.figures}
    assert (why.out / "cause.json").exists()
    again = run_experiment("cause", out=why.out, quick=True)
    assert again.trained == 0 and again.reused == why.trained > 0
