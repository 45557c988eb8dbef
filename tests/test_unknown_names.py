"""One sentence for a name gradvet does not know, `gradvet.base.errors.unknown`:
"[CONTEXT: ]unknown KIND 'value' (did you mean 'a'?); allowed: ...". Every place that refuses a
name says it this way; each case below is typed as a user would type it, and the expected
sentence is typed by hand."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import assert_user_error
from typer.testing import CliRunner

import gradvet
from gradvet.base.errors import GradvetError, unknown
from gradvet.cli import app

runner = CliRunner()


# -- the sentence itself --------------------------------------------------------------------------------

def test_unknown_lists_the_allowed_names_with_close_matches():
    err = unknown("norm", "btach", (None, "batch", "layer"))
    assert isinstance(err, GradvetError)
    assert str(err) == "unknown norm 'btach' (did you mean 'batch'?); allowed: none, batch, layer."


def test_unknown_without_a_close_match_has_no_hint():
    assert str(unknown("task", "xyz", ("binary", "multiclass"))) == "unknown task 'xyz'; allowed: binary, multiclass."


def test_unknown_with_context_words_and_folded_matches():
    err = unknown("activation", "Leaky-ReLU!", "a catalog name", choices=("leaky_relu", "relu"), context="grid")
    assert str(err) == "grid: unknown activation 'Leaky-ReLU!' (did you mean 'leaky_relu'?); allowed: a catalog name."
    err = unknown("init", "gausian:sw2=1", "he or gaussian", choices=("he", "gaussian"), spelled="gausian")
    assert str(err) == "unknown init 'gausian:sw2=1' (did you mean 'gaussian'?); allowed: he or gaussian."
    assert str(unknown("option", "x", ())) == "unknown option 'x'; allowed: none."


def test_unknown_keeps_a_huge_value_on_one_short_line():
    message = str(unknown("run field", "y" * 1_000_000, ("depth", "width")))
    assert "\n" not in message and len(message) < 300 and message.endswith("; allowed: depth, width.")


# -- every site, through the API ------------------------------------------------------------------------

def _choice():
    from gradvet.choose import CandidateResult, Choice

    return Choice(depth=2, width=4, data="digits", task="multiclass", norm=None, residual=False, steps=1,
                  steps_asked=1, seeds_asked=1, optimizer="sgd", lr=0.1, batch_size=8, budget=1.0, elapsed=0.0,
                  candidates=["relu", "tanh"], rows=[CandidateResult("relu", "relu", "he"),
                                                     CandidateResult("tanh", "tanh", "xavier")],
                  cut=[], budget_note="", output_activation="softmax", output_advice="", init_advice="",
                  norm_advice="", rules=[])


def _store_runs(tmp_path):
    from gradvet.sweep import Store

    with Store(tmp_path / "s.db") as store:
        store.runs("dnoe")


API_CASES = [
    (lambda tmp: gradvet.activation("sigmod"),
     "unknown activation 'sigmod' (did you mean 'sigmoid'"),
    (lambda tmp: gradvet.activation("elu", alhpa=2),
     "elu: unknown parameter 'alhpa' (did you mean 'alpha'?); allowed: alpha."),
    (lambda tmp: gradvet.activation("y*x"),
     "formula 'y*x': unknown name 'y'; a formula may use x"),
    (lambda tmp: gradvet.activation("x*sigmod(x)"),
     "formula 'x*sigmod(x)': unknown function 'sigmod' (did you mean 'sigmoid' or 'sign'?)"),
    (lambda tmp: gradvet.activations.catalog("rleu"),
     "unknown family 'rleu' (did you mean 'relu'?); allowed: relu, tanh, sigmoid, shrink, other."),
    (lambda tmp: gradvet.register("thing", torch.relu, family="tahn"),
     "register('thing'): unknown family 'tahn' (did you mean 'tanh'?); allowed: relu, tanh, sigmoid, shrink, "
     "other, custom."),
    (lambda tmp: gradvet.spec.RunSpec.from_dict({"detph": 3}),
     "unknown run field 'detph' (did you mean 'depth' or 'width'?); allowed: data, model, activation, depth,"),
    (lambda tmp: gradvet.spec.RunSpec(norm="btach"),
     "unknown norm 'btach' (did you mean 'batch'?); allowed: none, batch, layer."),
    (lambda tmp: gradvet.spec.RunSpec(optimizer="adma"),
     "unknown optimizer 'adma' (did you mean 'adam'?); allowed: sgd, momentum, adam, rmsprop."),
    (lambda tmp: gradvet.spec.RunSpec(model="lstn"),
     "unknown model 'lstn' (did you mean 'lstm'?); allowed: mlp, rnn, lstm, gru."),
    (lambda tmp: gradvet.spec.RunSpec(loss="mes"),
     "unknown loss 'mes' (did you mean 'mse'?); allowed: auto, cross_entropy, sigmoid_cross_entropy, mse."),
    (lambda tmp: gradvet.spec.RunSpec(init="xaiver"),
     "unknown init 'xaiver' (did you mean 'xavier'?); allowed: normal, nielsen, xavier, he, lecun, orthogonal, "
     "lsuv, critical, default, gaussian:sw2=S,sb2=B."),
    (lambda tmp: gradvet.spec.RunSpec(init="gaussian:sw=2"),
     "init='gaussian:sw=2': unknown parameter 'sw' (did you mean 'sw2'?); allowed: sw2 (weight variance times "
     "n_in, > 0) and sb2 (bias variance, >= 0)."),
    (lambda tmp: gradvet.models.mlp(4, 2, 1, 3, norm="grop"),
     "unknown norm 'grop'; allowed: none, batch, layer."),
    (lambda tmp: gradvet.models.rnn("lsm", 1, 1),
     "unknown recurrent model kind 'lsm' (did you mean 'lstm'?); allowed: rnn, lstm, gru."),
    (lambda tmp: gradvet.data.load("digts"),
     "unknown dataset 'digts' (did you mean 'digits'?); allowed: digits, mnist1d, mnist, adding, memory, or a "
     "path to a .npz file or to a directory holding the MNIST IDX files."),
    (lambda tmp: gradvet.data.load("adding", lenght=5),
     "dataset 'adding': unknown option 'lenght' (did you mean 'length'?); allowed: length, n_train, n_test, seed."),
    (lambda tmp: gradvet.experiments.run_experiment("speed-of-lerning", out=tmp),
     "unknown experiment 'speed-of-lerning' (did you mean 'speed-of-learning'?); allowed: activations, cause, "
     "exploding, remedies, residual, rnn, speed-of-learning, trainable-depth."),
    (lambda tmp: gradvet.sweep.run_sweep([], tmp / "s.db", backend="rya"),
     "unknown sweep backend 'rya' (did you mean 'ray'?); allowed: local, ray."),
    (lambda tmp: gradvet.sweep.run_sweep([], tmp / "s.db", batched="autp"),
     "unknown batched mode 'autp' (did you mean 'auto'?); allowed: auto, off."),
    (_store_runs,
     "unknown run status 'dnoe' (did you mean 'done'?); allowed: running, done, diverged, failed."),
    (lambda tmp: gradvet.choose(2, 4, task="binar"),
     "unknown task 'binar' (did you mean 'binary'?); allowed: binary, multiclass, regression."),
    (lambda tmp: _choice().row("rleu"),
     "unknown candidate 'rleu' (did you mean 'relu'?); allowed: the measured ones, relu, tanh."),
]


@pytest.mark.parametrize("case,expected", API_CASES, ids=[c[1][:40] for c in API_CASES])
def test_every_unknown_name_is_the_one_sentence(tmp_path, case, expected):
    import gradvet.data  # noqa: F401 - the cases reach these packages through gradvet.<name>
    import gradvet.experiments  # noqa: F401
    import gradvet.models  # noqa: F401
    import gradvet.spec  # noqa: F401
    import gradvet.sweep  # noqa: F401

    with pytest.raises(GradvetError) as info:
        case(tmp_path)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert message.endswith(".") or message.startswith("formula ")  # a formula's error ends with what it may use


def test_grid_file_unknown_field_and_table(tmp_path):
    from gradvet.sweep.grid import load_grid

    grid = tmp_path / "g.toml"
    grid.write_text("[grid]\nactivaton = ['relu']\n")
    with pytest.raises(GradvetError) as info:
        load_grid(grid)
    assert str(info.value).startswith(
        f"[grid] of {str(grid)!r}: unknown run field 'activaton' (did you mean 'activation' or "
        "'activation_params'?); allowed: data, ")
    grid.write_text("[bsae]\nsteps = 3\n")
    with pytest.raises(GradvetError) as info:
        load_grid(grid)
    assert str(info.value) == (f"{str(grid)!r}: unknown table '[bsae]' (did you mean 'base'?); "
                               "allowed: [base] and [grid].")


# -- the same, as typed on the command line ---------------------------------------------------------------

CLI_CASES = [
    (["activations", "--sort", "nmae"],
     "unknown sort key 'nmae' (did you mean 'name'?); allowed: name, family, max_grad, mean_gauss, grad_sq_gauss, "
     "chi1_he, critical_sw2, cost, smoothness, year."),
    (["activations", "--family", "rleu"],
     "unknown family 'rleu' (did you mean 'relu'?); allowed: relu, tanh, sigmoid, shrink, other."),
    (["show", "elu", "--param", "alhpa=2"],
     "elu: unknown parameter 'alhpa' (did you mean 'alpha'?); allowed: alpha."),
    (["show", "sigmod"], "unknown activation 'sigmod' (did you mean 'sigmoid'"),
    (["diagnose", "--norm", "btach"], "unknown norm 'btach' (did you mean 'batch'?); allowed: none, batch, layer."),
    (["diagnose", "--init", "gausian:sw2=1.5"], "unknown init 'gausian:sw2=1.5' (did you mean 'gaussian'?)"),
    (["diagnose", "--data", "digts"], "unknown dataset 'digts' (did you mean 'digits'?)"),
    (["experiment", "speed-of-lerning"], "unknown experiment 'speed-of-lerning' (did you mean 'speed-of-learning'?)"),
    (["choose", "--depth", "2", "--width", "4", "--task", "binar"],
     "unknown task 'binar' (did you mean 'binary'?); allowed: binary, multiclass, regression."),
    (["choose", "--depth", "2", "--width", "4", "--norm", "btach"],
     "unknown norm 'btach' (did you mean 'batch'?); allowed: none, batch, layer."),
]


@pytest.mark.parametrize("args,expected", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_unknown_names(tmp_path, args, expected):
    if args[0] == "experiment":
        args = [*args, "--out", str(tmp_path)]
    assert_user_error(runner.invoke(app, args), expected)


def test_cli_sweep_and_runs_unknown_names(tmp_path):
    from gradvet.sweep import Store

    grid = tmp_path / "g.toml"
    grid.write_text("[base]\nsteps = 1\n")
    store = tmp_path / "runs.db"
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", str(store), "--backend", "rya"]),
                      "unknown sweep backend 'rya' (did you mean 'ray'?); allowed: local, ray.")
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", str(store), "--batched", "autp"]),
                      "unknown batched mode 'autp' (did you mean 'auto'?); allowed: auto, off.")
    with Store(store):
        pass
    assert_user_error(runner.invoke(app, ["runs", "--store", str(store), "--status", "dnoe"]),
                      "unknown run status 'dnoe' (did you mean 'done'?); allowed: running, done, diverged, failed.")
