"""`gradvet diagnose` on built MLPs and on a user's own model; the engine's default probe trace."""

from __future__ import annotations

import json
import textwrap

import pytest
from cli_helpers import assert_user_error
from typer.testing import CliRunner

from gradvet.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("args,verdict", [
    (("--depth", "10", "--activation", "sigmoid", "--init", "xavier"), "vanishing"),
    (("--depth", "10", "--activation", "tanh", "--init", "xavier"), "healthy"),
    (("--depth", "30", "--activation", "relu", "--init", "he"), "healthy"),
    (("--depth", "30", "--activation", "relu", "--init", "xavier"), "vanishing"),
    (("--depth", "10", "--activation", "sigmoid", "--init", "xavier", "--norm", "batch"), "healthy"),
])
def test_diagnose_json_verdicts(args, verdict):
    result = run("diagnose", *args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == verdict
    assert data["layers"] and data["remedies"] is not None and data["cause"]


def test_diagnose_table_and_training_steps():
    result = run("diagnose", "--depth", "6", "--activation", "sigmoid", "--steps", "5")
    assert result.exit_code == 0, result.output
    assert "after 5 SGD steps" in result.stdout and "verdict:" in result.stdout and "hidden.0.linear" in result.stdout


def write_module(tmp_path, monkeypatch, body):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent(body))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_diagnose_a_users_own_model(tmp_path, monkeypatch):
    write_module(tmp_path, monkeypatch, """
        import torch.nn as nn
        def deep_sigmoid():
            layers = []
            for i in range(8):
                layers += [nn.Linear(64 if i == 0 else 32, 32), nn.Sigmoid()]
            return nn.Sequential(*layers, nn.Linear(32, 10))
        def no_params():
            return nn.Sequential(nn.ReLU())
        def not_a_model():
            return 3
        def wrong_input():
            return nn.Sequential(nn.Linear(100, 10))
    """)
    result = run("diagnose", "--model", "usermodels:deep_sigmoid", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "vanishing" and data["layers"][0]["name"] == "0"
    assert_user_error(run("diagnose", "--model", "usermodels:no_params"), "no trainable parameters")
    assert_user_error(run("diagnose", "--model", "usermodels:not_a_model"), "not a torch.nn.Module")
    assert_user_error(run("diagnose", "--model", "usermodels:wrong_input"), "does not fit the model")
    assert_user_error(run("diagnose", "--model", "usermodels:missing"), "no callable 'missing'")
    assert_user_error(run("diagnose", "--model", "nosuchpackage.mod:f"), "cannot import module")
    assert_user_error(run("diagnose", "--model", "usermodels"), "package.module:factory")


def test_diagnose_bad_options():
    assert_user_error(run("diagnose", "--activation", "sigmoyd"), "sigmoid")
    assert_user_error(run("diagnose", "--init", "hee"), "'he'")
    assert_user_error(run("diagnose", "--steps", "-1"), "steps=-1", "MAX_STEPS")
    assert_user_error(run("diagnose", "--data", "digts"), "digits")


def test_engine_records_a_probe_trace_by_default_and_the_store_keeps_it(tmp_path):
    from gradvet.probe import Trace, diagnose
    from gradvet.spec import RunSpec
    from gradvet.sweep import Store
    from gradvet.train import run as train

    result = train(RunSpec(depth=4, width=16, steps=120, eval_every=0, activation="sigmoid", init="xavier"))
    steps = sorted({r[0] for r in result.layer_records})
    assert steps == list(range(0, 120, 3))  # every ceil(120/50) = 3rd step
    with Store(tmp_path / "runs.db") as store:
        store.save(result)
        rows = store.layer_records(result.spec.key)
    assert len(rows) == len(result.layer_records)
    trace = Trace(rows)
    d = diagnose(trace, step="first")
    assert d.verdict in ("vanishing", "healthy") and len(d.layers) == 4  # depth 4: four hidden layers
