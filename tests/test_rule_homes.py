"""One home per rule: probing once at initialisation (gradvet.checkup.probe_at_init, used by
checkup and choose), building a model from a run description without the spec layer, the models'
option lists, and numbers and sizes checked by gradvet.base.validation. Each against an
independent computation or a sentence typed by hand."""

from __future__ import annotations

import copy
import types

import pytest
import torch
from cli_helpers import assert_user_error
from torch import nn
from typer.testing import CliRunner

from gradvet.base.errors import GradvetError
from gradvet.checkup import checkup, probe_at_init
from gradvet.cli import app
from gradvet.data import load
from gradvet.models import mlp
from gradvet.probe import diagnose

runner = CliRunner()


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def autograd_deltas(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||dL/dz_l|| of every hidden linear output z_l, by float64 autograd on a copy of `model`."""
    twin = copy.deepcopy(model).double()
    outputs: list[torch.Tensor] = []
    hooks = [block.linear.register_forward_hook(lambda m, i, o: outputs.append(o)) for block in twin.hidden]
    loss = nn.functional.cross_entropy(twin(x.double()), y)
    for hook in hooks:
        hook.remove()
    return [float(g.norm()) for g in torch.autograd.grad(loss, outputs)]


def test_probe_at_init_measures_the_first_batch_drawn_from_the_seed(digits):
    torch.manual_seed(1)
    model = mlp(digits.n_features, digits.n_classes, 4, 16, "tanh", "xavier")
    before = copy.deepcopy(model.state_dict())
    probe = probe_at_init(model, digits, batch_size=32, seed=5)
    idx = torch.randint(0, digits.x_train.shape[0], (32,), generator=torch.Generator().manual_seed(5))
    expected = autograd_deltas(model, digits.x_train[idx], digits.y_train[idx])
    layers = diagnose(probe).layers
    assert [lay.name for lay in layers] == [f"hidden.{i}.linear" for i in range(4)]
    assert [lay.delta for lay in layers] == pytest.approx(expected, rel=1e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no update


def test_checkup_at_initialisation_is_probe_at_init(digits):
    torch.manual_seed(2)
    model = mlp(digits.n_features, digits.n_classes, 3, 16, "relu", "he")
    diagnosis, _ = checkup(model, digits, batch_size=64, seed=3)
    idx = torch.randint(0, digits.x_train.shape[0], (64,), generator=torch.Generator().manual_seed(3))
    expected = autograd_deltas(model, digits.x_train[idx], digits.y_train[idx])
    assert [lay.delta for lay in diagnosis.layers] == pytest.approx(expected, rel=1e-4)


def test_choose_probes_the_model_train_run_starts_from(digits):
    from gradvet.choose import probe_spec_at_init
    from gradvet.spec import RunSpec

    spec = RunSpec(activation="sigmoid", init="xavier", depth=3, width=16, seed=4)
    diagnosis, model = probe_spec_at_init(spec, digits, batch_size=48)
    torch.manual_seed(4)  # how models.build seeds, done here by hand
    same = mlp(digits.n_features, digits.n_classes, 3, 16, "sigmoid", "xavier")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    idx = torch.randint(0, digits.x_train.shape[0], (48,), generator=torch.Generator().manual_seed(4))
    expected = autograd_deltas(same, digits.x_train[idx], digits.y_train[idx])
    assert [lay.delta for lay in diagnosis.layers] == pytest.approx(expected, rel=1e-4)


def test_build_takes_any_run_description(digits):
    """models.build reads fields, so it needs no import of gradvet.spec (a layer above models)."""
    from gradvet.models.build import build
    from gradvet.spec import RunSpec

    fields = dict(data="digits", model="mlp", activation="elu", activation_params=(("alpha", 0.5),), depth=2,
                  width=8, init="he", norm="layer", residual=True, seed=7)
    plain = build(types.SimpleNamespace(**fields), digits.n_features, digits.n_classes, False)
    spec = build(RunSpec(**fields), digits.n_features, digits.n_classes, False)
    assert isinstance(plain.hidden[1].norm, nn.LayerNorm) and plain.hidden[1].residual
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), spec.state_dict().values()))


def test_norms_have_one_home_and_each_builds():
    import gradvet.spec as spec
    from gradvet.models.mlp import NORMS

    assert spec.NORMS is NORMS
    assert spec.NORMS == (None, "batch", "layer")
    built = {norm: type(mlp(4, 2, 1, 3, norm=norm).hidden[0].norm) for norm in spec.NORMS}
    assert built == {None: type(None), "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
    assert spec.MODELS == ("mlp", "rnn", "lstm", "gru")


# -- whole numbers and other values: one wording, gradvet.base.validation ---------------------------------

def _theory_depth():
    from gradvet.theory import predict_profile

    predict_profile("relu", 0, 2.0, 0.0)


def _theory_sw2():
    from gradvet.theory import chi1

    chi1("relu", float("nan"), 0.0)


def _sweep_workers(tmp_path):
    from gradvet.sweep import run_sweep

    run_sweep([], tmp_path / "s.db", workers=257)


VALUE_CASES = [
    (lambda tmp: mlp(4, 2, 0, 3), "depth=0 is not allowed; allowed: a whole number >= 1."),
    (lambda tmp: mlp(4, 2, 2, 3.0), "width=3.0 is not allowed; allowed: a whole number >= 1."),
    (lambda tmp: load("digits", n_train=0), "n_train=0 is not allowed; allowed: a whole number >= 1."),
    (lambda tmp: load("adding", length=1),
     "adding option length=1 is not allowed; allowed: a whole number >= 2."),
    (lambda tmp: load("mnist1d", seed=2**32),
     "mnist1d option seed=4294967296 is not allowed; allowed: a whole number from 0 to 4294967295."),
    (lambda tmp: load("digits", test_size=1.0),
     "digits option test_size=1.0 is not allowed; allowed: a finite number > 0 and < 1."),
    (lambda tmp: load("mnist", path=tmp, flatten="yes"),
     "mnist option flatten='yes' is not allowed; allowed: true or false."),
    (lambda tmp: __import__("gradvet.spec").spec.RunSpec(residual=1),
     "residual=1 is not allowed; allowed: true or false."),
    (lambda tmp: _theory_depth(), "depth=0 is not allowed; allowed: a whole number from 1 to 10000 (MAX_DEPTH)."),
    (lambda tmp: _theory_sw2(), "sw2=nan is not allowed; allowed: a finite number > 0."),
    (_sweep_workers, "workers=257 is not allowed; allowed: a whole number from 1 to 256 (MAX_WORKERS)."),
]


@pytest.mark.parametrize("case,expected", VALUE_CASES, ids=[c[1][:40] for c in VALUE_CASES])
def test_values_are_checked_in_one_place_with_one_wording(tmp_path, case, expected):
    with pytest.raises(GradvetError) as info:
        case(tmp_path)
    assert str(info.value) == expected


def test_numpy_integers_are_whole_numbers_for_dataset_options():
    import numpy as np

    assert load("adding", length=np.int64(5), n_train=np.int32(3), n_test=2).x_train.shape == (3, 5, 2)


def test_cli_theory_values():
    assert_user_error(runner.invoke(app, ["theory", "relu", "--depth", "0"]),
                      "depth=0 is not allowed; allowed: a whole number from 1 to 10000 (MAX_DEPTH).")
    assert_user_error(runner.invoke(app, ["theory", "relu", "--sw2", "nan"]),
                      "sw2=nan is not allowed; allowed: a finite number > 0.")
