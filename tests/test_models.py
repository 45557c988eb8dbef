"""Model builders: layer names, init statistics, remedies, recurrent models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradvet import GradvetError
from gradvet.models import initialise, mlp, rnn
from gradvet.train.through_time import gradient_through_time


def weights(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def test_layer_names_are_stable():
    model = mlp(10, 3, depth=3, width=8, activation="tanh", norm="batch")
    names = [n for n, _ in model.named_modules() if n]
    assert names == ["hidden", "hidden.0", "hidden.0.linear", "hidden.0.norm", "hidden.0.act",
                     "hidden.1", "hidden.1.linear", "hidden.1.norm", "hidden.1.act",
                     "hidden.2", "hidden.2.linear", "hidden.2.norm", "hidden.2.act", "out"]


def variance_band(var: float, n: int, sigmas: float = 4.0) -> tuple[float, float]:
    """Sampling band of an estimated variance of n Gaussian draws: var (1 +- sigmas sqrt(2/n))."""
    half = sigmas * math.sqrt(2.0 / n)
    return var * (1 - half), var * (1 + half)


@pytest.mark.parametrize("scheme,expected_var", [
    ("he", lambda n_in, n_out: 2.0 / n_in),
    ("lecun", lambda n_in, n_out: 1.0 / n_in),
    ("nielsen", lambda n_in, n_out: 1.0 / n_in),
    ("normal", lambda n_in, n_out: 1.0),
    ("xavier", lambda n_in, n_out: 2.0 / (n_in + n_out)),
])
def test_init_weight_variance(scheme, expected_var):
    torch.manual_seed(0)
    model = mlp(300, 10, depth=2, width=400, activation="relu", init=scheme)
    for layer in weights(model):
        n_out, n_in = layer.weight.shape
        var = float(layer.weight.detach().double().var())
        lo, hi = variance_band(expected_var(n_in, n_out), layer.weight.numel())
        if scheme == "xavier":  # uniform: Var of the estimate is smaller than a Gaussian's, band still holds
            assert float(layer.weight.detach().abs().max()) <= math.sqrt(6 / (n_in + n_out)) + 1e-7
        assert lo < var < hi, (scheme, n_in, var, expected_var(n_in, n_out))
        bias_var = float(layer.bias.detach().double().var())
        if scheme in ("nielsen", "normal"):
            assert abs(bias_var - 1.0) < 4 * math.sqrt(2 / layer.bias.numel())
        else:
            assert bias_var == 0.0


def test_orthogonal_init_gives_orthonormal_rows_or_columns():
    model = mlp(32, 10, depth=2, width=32, activation="tanh", init="orthogonal")
    for layer in weights(model):
        w = layer.weight.double()
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)


def test_lsuv_gives_unit_output_variance_per_layer():
    torch.manual_seed(1)
    data = torch.randn(512, 20) * 3 + 1
    model = mlp(20, 5, depth=4, width=64, activation="tanh", init="lsuv", data=data)
    outputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=n: outputs.__setitem__(name, o.detach()))
             for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    model(data)
    for h in hooks:
        h.remove()
    assert len(outputs) == 5
    for name, out in outputs.items():
        assert abs(float(out.var()) - 1.0) < 0.011, name


def test_lsuv_needs_data_and_bad_scheme_is_clear():
    with pytest.raises(GradvetError, match="data"):
        mlp(4, 2, 1, 4, init="lsuv")
    with pytest.raises(GradvetError, match="'xaviar'.*'xavier'"):
        mlp(4, 2, 1, 4, init="xaviar")


def test_residual_block_computes_x_plus_f_of_x():
    torch.manual_seed(0)
    model = mlp(6, 2, depth=3, width=6, activation="tanh", residual=True, init="xavier")
    x = torch.randn(5, 6)
    h = x
    for block in model.hidden:  # independent: the formula, not the module's forward
        h = h + torch.tanh(h @ block.linear.weight.T + block.linear.bias)
    expected = h @ model.out.weight.T + model.out.bias
    torch.testing.assert_close(model(x), expected)
    plain = mlp(6, 2, depth=3, width=6, activation="tanh", residual=False)
    assert not any(b.residual for b in plain.hidden)


def test_first_block_has_no_skip_when_widths_differ():
    model = mlp(5, 2, depth=2, width=8, residual=True)
    assert [b.residual for b in model.hidden] == [False, True]


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    torch.manual_seed(0)
    model = mlp(4, 2, depth=1, width=3, activation="identity", norm="batch", init="xavier")
    block = model.hidden[0]
    assert isinstance(block.norm, nn.BatchNorm1d)
    x = torch.randn(64, 4) * 2 + 3
    z = block.linear(x)
    model.train()
    train_out = block(x)
    expected = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + block.norm.eps)
    torch.testing.assert_close(train_out, expected, atol=1e-5, rtol=1e-5)
    model.eval()
    rm, rv = block.norm.running_mean, block.norm.running_var
    torch.testing.assert_close(block(x), (z - rm) / torch.sqrt(rv + block.norm.eps), atol=1e-5, rtol=1e-5)
    assert isinstance(mlp(4, 2, 1, 3, norm="layer").hidden[0].norm, nn.LayerNorm)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradient_through_time_equals_brute_force(kind):
    torch.manual_seed(0)
    model = rnn(kind, input_size=3, out_features=2, hidden_size=5, activation="tanh", init="orthogonal").double()
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    loss_fn = nn.CrossEntropyLoss()
    profile = gradient_through_time(model, loss_fn, x, y)
    assert len(profile) == 7
    for t in range(7):
        with torch.no_grad():  # state after step t, computed without keeping anything
            state = model.run_from(x[:, : t + 1], model.initial_state(4, x), 0)
        if isinstance(state, tuple):
            leaf = state[0].clone().requires_grad_(True)
            state = (leaf, state[1].clone())
        else:
            leaf = state = state.clone().requires_grad_(True)
        final = model.run_from(x, state, t + 1)
        loss = loss_fn(model.out(model.hidden(final)), y)
        (g,) = torch.autograd.grad(loss, leaf)
        assert profile[t] == pytest.approx(float(g.norm()), rel=1e-10, abs=1e-14), t


def test_tbptt_cuts_the_graph_at_the_stated_length():
    torch.manual_seed(0)
    model = rnn("rnn", 2, 1, hidden_size=4, init="orthogonal")
    model.tbptt = 3
    model.keep_states = True
    x = torch.randn(2, 10, 2)
    model(x).sum().backward()
    grads = [s.grad for s in model.states]
    assert all(g is None or float(g.abs().sum()) == 0.0 for g in grads[:7])  # before the last 3 steps
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads[7:])
    # parameter gradients equal those of the model run on the last 3 steps from the detached state
    model.zero_grad()
    model.keep_states = False
    model(x).sum().backward()
    cut = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.tbptt = None
    with torch.no_grad():
        state = model.run_from(x[:, :7], model.initial_state(2, x), 0)
    model.out(model.hidden(model.run_from(x, state, 7))).sum().backward()
    for a, b in zip(cut, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(a, b)


def test_recurrent_models_shapes_and_init():
    x = torch.randn(3, 6, 2)
    for kind in ("rnn", "lstm", "gru"):
        model = rnn(kind, 2, 4, hidden_size=8, init="orthogonal")
        assert model(x).shape == (3, 4)
    lstm = rnn("lstm", 2, 1, hidden_size=8, init="orthogonal")
    for block in lstm.cell.weight_hh.chunk(4, dim=0):  # each gate's block orthogonal
        torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
    with pytest.raises(GradvetError):
        rnn("lstm", 2, 1, init="lsuv")


def test_initialise_rejects_unknown_scheme():
    with pytest.raises(GradvetError, match="allowed"):
        initialise(nn.Linear(2, 2), "glorot")


# -- init "gaussian:sw2=S,sb2=B" (any point of the mean-field phase diagram) -----------------------------
def sample_variance(tensors) -> float:
    """Unbiased sample variance of all entries together, in float64 with numpy (not torch's var)."""
    import numpy as np

    values = np.concatenate([t.detach().double().numpy().ravel() for t in tensors])
    return float(((values - values.mean()) ** 2).sum() / (values.size - 1))


@pytest.mark.parametrize("sw2,sb2", [(1.5, 0.05), (3.0, 0.5), (0.7, 0.0)])
def test_gaussian_init_has_the_stated_weight_and_bias_variance(sw2, sb2):
    torch.manual_seed(0)
    text = f"gaussian:sw2={sw2},sb2={sb2}"
    model = mlp(300, 10, depth=3, width=400, activation="tanh", init=text)
    layers = weights(model)
    for layer in layers:
        n_out, n_in = layer.weight.shape
        lo, hi = variance_band(sw2 / n_in, layer.weight.numel())
        var = sample_variance([layer.weight])
        assert lo < var < hi, (n_in, var, sw2 / n_in)
        assert abs(float(layer.weight.detach().double().mean())) < 4 * math.sqrt(sw2 / n_in / layer.weight.numel())
    biases = [layer.bias for layer in layers]
    n_bias = sum(b.numel() for b in biases)  # 3 * 400 + 10 draws from N(0, sb2)
    if sb2 == 0:
        assert all(float(b.detach().abs().max()) == 0.0 for b in biases)
    else:
        lo, hi = variance_band(sb2, n_bias)
        assert lo < sample_variance(biases) < hi


def test_gaussian_init_without_sb2_has_zero_biases_and_is_reproducible():
    from gradvet.models.init import parse_gaussian

    assert parse_gaussian("gaussian:sw2=2") == (2.0, 0.0)
    assert parse_gaussian(" gaussian : sb2 = 0.25 , sw2 = 1e0 ") == (1.0, 0.25)
    a = mlp(20, 3, depth=2, width=30, activation="tanh", init="gaussian:sw2=2", seed=3)
    b = mlp(20, 3, depth=2, width=30, activation="tanh", init="gaussian:sw2=2.0,sb2=0", seed=3)
    for la, lb in zip(weights(a), weights(b)):
        torch.testing.assert_close(la.weight, lb.weight, rtol=0, atol=0)
        assert float(la.bias.detach().abs().max()) == 0.0


@pytest.mark.parametrize("text,expected", [
    ("gaussian", r"needs its weight variance.*gaussian:sw2=S,sb2=B"),
    ("gaussian:", r"needs its weight variance"),
    ("gaussian:sw2", r"'sw2' is not name=value"),
    ("gaussian:sw2=1,,sb2=0.1", r"an empty part is not name=value"),
    ("gaussian:sw=1.5", r"unknown parameter 'sw' \(did you mean 'sw2'\?\); allowed: sw2 .* and sb2"),
    ("gaussian:sw2=1.5,sigma=2", r"unknown parameter 'sigma'"),
    ("gaussian:sw2=abc", r"^init='gaussian:sw2=abc': sw2='abc' is not allowed \(not a number\); allowed: a finite number > 0\.$"),
    ("gaussian:sw2=__import__('os')", r"is not allowed \(not a number\)"),
    ("gaussian:sw2=0", r"^init='gaussian:sw2=0': sw2='0' is not allowed; allowed: a finite number > 0\.$"),
    ("gaussian:sw2=-1.5", r"sw2='-1.5' is not allowed; allowed: a finite number > 0"),
    ("gaussian:sw2=inf", r"sw2='inf' is not allowed"),
    ("gaussian:sw2=nan", r"sw2='nan' is not allowed"),
    ("gaussian:sw2=1,sb2=-0.1", r"sb2='-0.1' is not allowed; allowed: a finite number >= 0\.$"),
    ("gaussian:sw2=1,sw2=2", r"sw2 is given twice"),
    ("gaussian:sb2=0.05", r"has no sw2"),
    ("gausian:sw2=1.5", r"^unknown init 'gausian:sw2=1.5' \(did you mean 'gaussian'\?\); allowed: .*gaussian:sw2=S,sb2=B\.$"),
])
def test_bad_gaussian_init_strings_give_one_clear_sentence(text, expected):
    from gradvet.spec import RunSpec

    for make in (lambda: RunSpec(init=text), lambda: initialise(nn.Linear(2, 2), text)):
        with pytest.raises(GradvetError, match=expected) as info:
            make()
        message = str(info.value)
        assert message.startswith(("init=", "unknown init ")) and message.endswith(".") and "\n" not in message


def test_runspec_with_gaussian_init_is_canonical_and_trains():
    from gradvet.spec import RunSpec
    from gradvet.train import run

    spec = RunSpec(activation="tanh", init="gaussian: sb2=0.05, sw2=1.5", depth=3, width=16, steps=5,
                   eval_every=0, lr=0.01)
    assert spec.init == "gaussian:sw2=1.5,sb2=0.05"
    assert spec.key == spec.replace(init="gaussian:sw2=1.50,sb2=5e-2").key
    assert spec.key != spec.replace(init="gaussian:sw2=1.5,sb2=0.06").key
    assert RunSpec.from_dict(spec.to_dict()) == spec
    result = run(spec, probe=None)
    assert result.status == "done"
    assert len(result.history["loss"]) == 5 and all(math.isfinite(v) for v in result.history["loss"])
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0


def test_recurrent_models_accept_the_gaussian_init():
    torch.manual_seed(0)
    lstm = rnn("lstm", 3, 2, hidden_size=200, init="gaussian:sw2=1.0,sb2=0.2")
    lo, hi = variance_band(1.0 / 200, lstm.cell.weight_hh.numel())
    assert lo < sample_variance([lstm.cell.weight_hh]) < hi
    biases = [p for name, p in lstm.cell.named_parameters() if name.startswith("bias")]
    lo, hi = variance_band(0.2, sum(b.numel() for b in biases))
    assert lo < sample_variance(biases) < hi
    assert rnn("rnn", 3, 2, hidden_size=8, init="gaussian:sw2=1.0")(torch.randn(2, 5, 3)).shape == (2, 2)
