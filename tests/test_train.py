"""The training loop: determinism, each remedy against an independent computation,
divergence, pre-training, recurrent profiles."""

from __future__ import annotations

import math

import pytest
import torch

from gradvet import GradvetError
from gradvet.data import load
from gradvet.models.build import build
from gradvet.spec import RunSpec
from gradvet.train import run
from gradvet.train.loop import BatchSampler
from gradvet.train.optim import make_loss

SMALL = dict(depth=3, width=16, steps=40, eval_every=20, batch_size=32)


def test_same_spec_gives_identical_histories():
    spec = RunSpec(**SMALL, activation="tanh", init="xavier", optimizer="momentum", lr=0.05)
    a, b = run(spec), run(spec)
    assert a.history == b.history
    assert a.metrics["test_loss"] == b.metrics["test_loss"]
    assert run(spec.replace(seed=1)).history["loss"] != a.history["loss"]


def test_spec_key_is_stable_and_content_based():
    a = RunSpec(depth=3, activation_params={"negative_slope": 0.2}, activation="leaky_relu")
    b = RunSpec(activation="leaky_relu", activation_params=(("negative_slope", 0.2),), depth=3)
    assert a == b and a.key == b.key and hash(a) == hash(b)
    assert a.key != a.replace(seed=1).key
    assert RunSpec.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("bad,fragment", [
    (dict(model="transformer"), "unknown model 'transformer'; allowed: mlp, rnn, lstm, gru."),
    (dict(init="hee"), "'he'"),
    (dict(depth=0), "depth=0"),
    (dict(lr=-1.0), "lr=-1.0"),
    (dict(clip=0.0), "clip=0.0"),
    (dict(tbptt=5), "tbptt"),
])
def test_bad_specs_are_rejected_clearly(bad, fragment):
    with pytest.raises(GradvetError, match=None) as err:
        RunSpec(**bad)
    assert fragment in str(err.value)
    with pytest.raises(GradvetError, match="'stesp'.*'steps'"):
        RunSpec.from_dict({"stesp": 3})


def first_step_by_hand(spec: RunSpec):
    """Parameters after one optimiser step, computed independently of the loop:
    the loss gradient by autograd, clipped by hand, plus the L2 penalty's gradient."""
    data = load(spec.data)
    generator = torch.Generator().manual_seed(spec.seed)
    sample = data.x_train[torch.randperm(data.x_train.shape[0], generator=generator)[:512]]
    model = build(spec, data.n_features, data.n_classes, False, sample=sample)
    idx = BatchSampler(data.x_train.shape[0], spec.batch_size, generator).next()
    params = list(model.parameters())
    loss = make_loss(spec, data.task)(model(data.x_train[idx]), data.y_train[idx])
    grads = torch.autograd.grad(loss, params)
    if spec.clip is not None:  # clipping acts on the loss gradient ...
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        grads = [g * min(1.0, spec.clip / float(norm)) for g in grads]
    # ... and weight decay adds the gradient of the penalty (wd/2)||w||^2, by autograd
    penalty = 0.5 * spec.weight_decay * sum((p * p).sum() for p in params)
    decay = torch.autograd.grad(penalty, params) if spec.weight_decay else [0.0] * len(params)
    return [p.detach() - spec.lr * (g + d) for p, g, d in zip(params, grads, decay)]


class ParamsAfterFirstStep:
    """A probe that copies the parameters after step 1 and the gradient norm the optimiser saw."""

    def start(self, model, optimizer):
        self.model, self.snapshot = model, None

    def after_backward(self, step):
        if step == 2:
            self.snapshot = [p.detach().clone() for p in self.model.parameters()]

    def finish(self):
        return [(1, "all", "done", 1.0)]


@pytest.mark.parametrize("remedy", [dict(weight_decay=0.05), dict(clip=0.5), dict(clip=0.5, weight_decay=0.01)])
def test_weight_decay_and_clipping_equal_the_independent_update(remedy):
    spec = RunSpec(**{**SMALL, "steps": 2}, init="he", lr=0.3, **remedy)
    probe = ParamsAfterFirstStep()
    result = run(spec, probe=probe)
    assert result.layer_records == [(1, "all", "done", 1.0)]  # the probe's records reach the Run
    for got, expected in zip(probe.snapshot, first_step_by_hand(spec)):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_clipping_bounds_the_update_and_history_keeps_the_unclipped_norm():
    spec = RunSpec(**SMALL, init="normal", activation="relu", lr=0.01, clip=1.0)
    result = run(spec)
    assert max(result.history["grad_norm"]) > 1.0  # recorded before clipping
    by_value = run(spec.replace(clip=None, clip_value=0.01, steps=2))
    assert by_value.status == "done"


def test_divergence_stops_and_keeps_the_history():
    spec = RunSpec(**{**SMALL, "steps": 200, "depth": 6}, init="normal", activation="relu", lr=50.0)
    result = run(spec)
    assert result.status == "diverged"
    at = result.metrics["diverged_at"]
    assert at is not None and 1 <= at <= 200 and len(result.history["loss"]) == at
    last = result.history["loss"][-1], result.history["grad_norm"][-1]
    assert not all(math.isfinite(v) for v in last)
    assert all(math.isfinite(v) for v in result.history["loss"][:-1])
    assert result.metrics["steps_done"] == at - 1


def test_training_learns_digits():
    result = run(RunSpec(depth=2, width=32, steps=300, lr=0.1, eval_every=100))
    assert result.status == "done" and result.metrics["test_accuracy"] > 0.85
    assert result.history["eval_step"] == [100, 200, 300]
    assert result.metrics["step_time"] > 0


def test_pretraining_reduces_each_layers_reconstruction_loss():
    spec = RunSpec(**{**SMALL, "steps": 5}, activation="sigmoid", init="nielsen", pretrain=150, lr=0.5)
    result = run(spec)
    assert [r["layer"] for r in result.pretrain] == [0, 1, 2]
    for record in result.pretrain:
        assert record["after"] < 0.9 * record["before"], record


def test_recurrent_run_records_gradient_through_time():
    spec = RunSpec(data="adding", data_options={"length": 12, "n_train": 256, "n_test": 64}, model="rnn",
                   activation="tanh", init="orthogonal", width=16, steps=30, lr=0.05, eval_every=0)
    result = run(spec)
    assert result.status == "done"
    assert len(result.through_time["init"]) == 12 and len(result.through_time["trained"]) == 12
    assert result.metrics["test_accuracy"] is None and math.isfinite(result.metrics["test_loss"])
    truncated = run(spec.replace(tbptt=4))
    assert truncated.history["loss"] != result.history["loss"]


def test_model_and_data_must_match():
    with pytest.raises(GradvetError, match="sequence"):
        run(RunSpec(data="adding", model="mlp", steps=1))
    with pytest.raises(GradvetError, match="sequence task"):
        run(RunSpec(data="digits", model="lstm", steps=1))


def test_batch_sampler_covers_every_example_each_epoch():
    sampler = BatchSampler(10, 3, torch.Generator().manual_seed(0))
    seen = torch.cat([sampler.next() for _ in range(3)])
    assert sorted(seen.tolist()) == sorted(set(seen.tolist())) and len(seen) == 9


def test_a_probe_given_as_another_string_is_one_sentence():
    with pytest.raises(GradvetError, match=r"probe='full' must be 'auto', None or a step observer"):
        run(RunSpec(steps=2), probe="full")


def test_batched_training_refuses_the_same_probe_strings():
    from gradvet.train.batched import train_specs

    with pytest.raises(GradvetError, match=r"probe='full' must be 'auto'"):
        train_specs([RunSpec(steps=2, seed=s) for s in range(8)], probe="full")
