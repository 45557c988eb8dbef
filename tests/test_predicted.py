"""Mean-field prediction beside the probe's measurement: which models get one, and that it is right."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gradvet import theory as T
from gradvet.checkup import checkup
from gradvet.data import load
from gradvet.models import mlp
from gradvet.probe.predicted import Prediction, predict_for


def test_prediction_reads_the_models_own_variances():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(), nn.Dropout(0.0),
                          nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 3))
    with torch.no_grad():
        for i, scale in ((0, 1.0), (2, 1.5), (5, 0.7)):
            nn.init.normal_(model[i].weight, 0.0, math.sqrt(scale / model[i].in_features))
            nn.init.normal_(model[i].bias, 0.0, 0.2)
    x = 2 * torch.randn(64, 20)
    pred = predict_for(model, x)
    assert isinstance(pred, Prediction) and list(pred.ratios) == ["0", "2", "5"]
    # independent: second moments computed here, then the theory's per-layer profile
    sw2 = [float((model[i].weight.detach().double() ** 2).sum() / model[i].out_features) for i in (0, 2, 5)]
    sb2 = [float((model[i].bias.detach().double() ** 2).mean()) for i in (0, 2, 5)]
    assert pred.sw2 == pytest.approx(sw2, rel=1e-9) and pred.sb2 == pytest.approx(sb2, rel=1e-9)
    assert pred.q0 == pytest.approx(float((x.double() ** 2).mean()), rel=1e-9)
    assert list(pred.ratios.values()) == pytest.approx(T.predict_profile("tanh", 3, sw2, sb2, q0=pred.q0), rel=1e-12)
    # per-layer profile by hand: ||d_l||^2 = sw2_{l+1} E[f'(sqrt(q_l) z)^2] ||d_{l+1}||^2
    tanh = __import__("gradvet").activation("tanh")
    q1 = sw2[0] * pred.q0 + sb2[0]
    q2 = T.length_map(tanh, q1, sw2[1], sb2[1])
    r2 = math.sqrt(T.chi(tanh, q2, sw2[2]))
    assert pred.ratios["2"] == pytest.approx(r2, rel=1e-12)
    assert pred.ratios["0"] == pytest.approx(r2 * math.sqrt(T.chi(tanh, q1, sw2[1])), rel=1e-12)


@pytest.mark.parametrize("build,reason", [
    (lambda: mlp(16, 4, 3, 32, "relu", "he", residual=True), "not the plain chain"),
    (lambda: mlp(16, 4, 3, 32, "tanh", "xavier", norm="batch"), "BatchNorm1d"),
    (lambda: nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)), "different activations"),
    (lambda: nn.Sequential(nn.Linear(16, 4)), "not a chain"),
])
def test_no_prediction_where_theory_does_not_apply(build, reason):
    torch.manual_seed(0)
    result = predict_for(build(), torch.randn(8, 16))
    assert isinstance(result, str) and reason in result


def test_no_prediction_for_non_finite_weights():
    model = mlp(16, 4, 3, 32, "tanh", "xavier")
    with torch.no_grad():
        model.hidden[1].linear.weight[0, 0] = float("nan")
    result = predict_for(model, torch.randn(8, 16))
    assert isinstance(result, str) and "not finite" in result


@pytest.mark.parametrize("activation,init", [("tanh", "xavier"), ("sigmoid", "xavier"), ("relu", "he")])
def test_diagnose_prediction_follows_the_measurement(activation, init):
    torch.manual_seed(0)
    data = load("digits")
    model = mlp(data.n_features, data.n_classes, 8, 256, activation, init)
    diagnosis, _ = checkup(model, data, batch_size=512)
    for lay in diagnosis.layers:
        assert 0.5 <= lay.ratio_to_last / lay.predicted_ratio <= 2.0, (lay.name, lay.ratio_to_last, lay.predicted_ratio)
    record = json.loads(diagnosis.to_json())
    assert record["predicted_ratio"] == pytest.approx(diagnosis.layers[0].predicted_ratio)
    assert "predicted" in record["prediction_note"]


def test_diagnose_command_shows_the_prediction():
    from typer.testing import CliRunner

    from gradvet.cli import app

    out = CliRunner().invoke(app, ["diagnose", "--depth", "6", "--activation", "sigmoid"])
    assert out.exit_code == 0, out.output
    assert "predicted" in out.stdout and "theory: mean-field prediction for sigmoid" in out.stdout
    norm = CliRunner().invoke(app, ["diagnose", "--depth", "4", "--norm", "batch", "--json"])
    assert "no mean-field prediction" in json.loads(norm.stdout)["prediction_note"]
