"""Batched training (torch.func) reproduces sequential training run by run."""

from __future__ import annotations

import math

import pytest

from gradvet.base.errors import GradvetError
from gradvet.data import load
from gradvet.spec import RunSpec
from gradvet.train import run
from gradvet.train.batched import batch_key, describe, run_batched, train_specs, why_sequential


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def assert_same_run(seq, bat, rel=1e-5):
    assert bat.status == seq.status and bat.metrics["diverged_at"] == seq.metrics["diverged_at"]
    assert bat.history["step"] == seq.history["step"]
    for key in ("loss", "grad_norm"):
        for a, b in zip(seq.history[key], bat.history[key]):
            if math.isfinite(a):
                assert b == pytest.approx(a, rel=rel, abs=1e-6), key
            else:
                assert not math.isfinite(b)
    assert bat.history["eval_step"] == seq.history["eval_step"]
    assert bat.history["test_loss"] == pytest.approx(seq.history["test_loss"], rel=rel, abs=1e-6)
    assert bat.history["test_accuracy"] == pytest.approx(seq.history["test_accuracy"], abs=1e-6)
    assert bat.metrics["steps_done"] == seq.metrics["steps_done"]


def assert_same_trace(seq, bat, min_rows=100):
    """The probe trace measured inside the batched step is the run's sequential Probe trace: the
    same rows in the same order (steps, layers in forward order, metrics in the registry's order),
    the same numbers to 1e-4 (NaN where it has NaN)."""
    assert [r[:3] for r in bat.layer_records] == [r[:3] for r in seq.layer_records]
    assert len(seq.layer_records) > min_rows
    for a, b in zip(seq.layer_records, bat.layer_records):
        if math.isnan(a[3]):
            assert math.isnan(b[3]), a
        else:
            assert b[3] == pytest.approx(a[3], rel=1e-4, abs=1e-7), a


GRID = [
    dict(seed=0, lr=0.1, weight_decay=0.0, init="he"),
    dict(seed=1, lr=0.05, weight_decay=1e-3, init="xavier"),
    dict(seed=2, lr=0.2, weight_decay=0.0, init="gaussian:sw2=2.0,sb2=0.05"),
    dict(seed=3, lr=0.1, weight_decay=5e-4, init="lsuv"),
]


@pytest.mark.parametrize("common", [
    dict(activation="relu", optimizer="sgd"),
    dict(activation="tanh", optimizer="momentum", clip=0.5),
    dict(activation="x*sigmoid(x)", optimizer="sgd", clip_value=0.05, norm="layer", residual=True),
])
def test_batched_equals_sequential(digits, common):
    specs = [RunSpec(depth=3, width=16, steps=60, eval_every=20, **common, **g) for g in GRID]
    batched = run_batched(specs, dataset=digits)
    for spec, bat in zip(specs, batched):
        seq = run(spec, dataset=digits)
        assert_same_run(seq, bat)
        assert bat.metrics["batched_with"] == len(specs)
        assert_same_trace(seq, bat)


def test_a_diverging_run_stops_while_the_others_go_on(digits):
    specs = [RunSpec(depth=3, width=16, steps=40, lr=lr, seed=s, eval_every=10)
             for s, lr in ((0, 0.05), (1, 1e4), (2, 0.1))]
    batched = run_batched(specs, dataset=digits)
    assert [r.status for r in batched] == ["done", "diverged", "done"]
    times = [r.metrics["step_time"] for r in batched]
    assert times[0] == times[1] == times[2] > 0  # per step the group took, diverged or not
    for spec, bat in zip(specs, batched):
        seq = run(spec, dataset=digits)
        assert_same_run(seq, bat)
        assert_same_trace(seq, bat)  # the diverging step's non-finite flags too
    flags = {r[2] for r in batched[1].layer_records}
    assert {"nonfinite", "nonfinite_output"} <= flags


TRACE_CASES = {  # what each brings into the trace beyond the plain case above
    "persistent dead units (>= 100 steps)": dict(depth=4, width=16, steps=120, lr=0.5, init="gaussian:sw2=4.0,sb2=0.0"),
    "residual blocks, the first with a skip (input width = width)": dict(depth=2, width=64, steps=20, residual=True,
                                                                         norm="layer", activation="tanh"),
    "residual stream at a huge learning rate, clipped": dict(depth=3, width=16, steps=20, residual=True, lr=50.0,
                                                            activation="sigmoid", clip=1.0, optimizer="momentum"),
    "one block (nothing repeats)": dict(depth=1, width=8, steps=20, residual=True),
}


@pytest.mark.parametrize("case", list(TRACE_CASES))
def test_batched_trace_equals_sequential_trace(digits, case):
    specs = [RunSpec(seed=s, eval_every=0, **TRACE_CASES[case]) for s in range(2)]
    for spec, bat in zip(specs, run_batched(specs, dataset=digits)):
        seq = run(spec, dataset=digits)
        assert_same_run(seq, bat)
        assert_same_trace(seq, bat, min_rows=50)


def test_every_trace_field_is_covered(digits):
    """Across the cases above, the batched trace holds every layer, model and block metric the
    registry has (calls and nonfinite_input: a module called twice, a NaN in the data; neither
    occurs in a batched MLP)."""
    from gradvet.probe.metrics import registry

    seen = set()
    for case in TRACE_CASES.values():
        spec = RunSpec(eval_every=0, **case)
        seen |= {r[2] for r in run_batched([spec, spec.replace(seed=1)], dataset=digits)[0].layer_records}
    diverging = RunSpec(depth=3, width=16, steps=40, lr=1e4, eval_every=0)
    seen |= {r[2] for r in run_batched([diverging, diverging.replace(seed=1)], dataset=digits)[0].layer_records}
    assert {u.name for u in registry.metrics()} - seen == {"calls", "nonfinite_input"}


def test_the_trace_changes_no_weight(digits):
    specs = [RunSpec(depth=3, width=16, steps=30, eval_every=10, seed=s, clip=0.5, optimizer="momentum")
             for s in range(3)]
    traced, plain = run_batched(specs, dataset=digits), run_batched(specs, probe=None, dataset=digits)
    for a, b in zip(traced, plain):
        assert a.history == b.history  # bit for bit: the probed steps add zeros
        assert a.layer_records and not b.layer_records


def test_a_registered_metric_sends_runs_one_by_one(digits):
    from gradvet.probe.metrics import Metric, register, unregister

    class Twice(Metric):
        name = "twice_output_grad_norm"

    specs = [RunSpec(depth=2, width=8, steps=4, eval_every=0, seed=s) for s in range(2)]
    register(Twice)
    try:
        assert "twice_output_grad_norm" in why_sequential(specs[0])
        assert describe(specs) == {"groups": [], "alone": 2}
    finally:
        unregister("twice_output_grad_norm")
    assert why_sequential(specs[0]) is None


def test_grouping_and_reasons():
    base = RunSpec(depth=3, width=16)
    assert batch_key(base) == batch_key(base.replace(seed=5, lr=0.3, weight_decay=1e-4, init="xavier"))
    assert batch_key(base) != batch_key(base.replace(depth=4))
    assert batch_key(base) != batch_key(base.replace(clip=1.0))
    assert "batch norm" in why_sequential(base.replace(norm="batch"))
    assert "adam" in why_sequential(base.replace(optimizer="adam"))
    assert "recurrent" in why_sequential(RunSpec(data="adding", model="lstm"))
    assert "pre-training" in why_sequential(base.replace(pretrain=5))
    assert "one-hot" in why_sequential(base.replace(loss="sigmoid_cross_entropy"))
    assert why_sequential(base.replace(activation="rrelu")) and why_sequential(base.replace(activation="binary_step"))
    assert batch_key(base.replace(norm="batch")) is None
    specs = [base.replace(seed=s) for s in range(3)] + [base.replace(depth=4)] + [base.replace(optimizer="adam")]
    assert describe(specs) == {"groups": [3], "alone": 2}
    with pytest.raises(GradvetError, match="differ only in"):
        run_batched([base, base.replace(depth=4)])


def test_train_specs_keeps_order(digits):
    base = RunSpec(depth=2, width=8, steps=15, eval_every=0)
    specs = [base.replace(seed=0), base.replace(optimizer="adam", lr=0.01), base.replace(seed=1)]
    runs = train_specs(specs, dataset=digits)
    assert [r.spec for r in runs] == specs
    assert runs[0].metrics["batched_with"] == 2 and "batched_with" not in runs[1].metrics
    assert_same_run(run(specs[2], dataset=digits), runs[2])


def test_sweep_batches_groups_and_stores_runs_like_one_by_one(tmp_path):
    from gradvet.sweep import Store, run_sweep
    from gradvet.sweep.batched import plan

    specs = [RunSpec(depth=2, width=8, steps=20, eval_every=10, seed=s, lr=lr) for s in range(8) for lr in (0.05, 0.1)]
    specs.append(specs[0].replace(optimizer="adam", lr=0.01))  # trains alone
    units = plan(specs, workers=2)
    assert sorted(len(u) for u in units) == [1, 8, 8]  # the group of 16 split between 2 workers
    assert sorted(len(u) for u in plan(specs[:12], workers=2)) == [12]  # parts stay >= 8 runs
    assert [len(u) for u in plan(specs[:7])] == [1] * 7  # too few to gain: one by one
    assert [len(u) for u in plan(specs, mode="off")] == [1] * 17
    with pytest.raises(GradvetError, match=r"^unknown batched mode 'of' \(did you mean 'off'\?\); allowed: auto, off\.$"):
        plan(specs, mode="of")
    one = run_sweep(specs, tmp_path / "one.db", batched="off")
    both = run_sweep(specs, tmp_path / "batched.db", workers=2)
    assert (one.done, both.done, both.ran) == (17, 17, 17)
    with Store(tmp_path / "one.db") as a, Store(tmp_path / "batched.db") as b:
        assert b.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows_a = {r["key"]: r for r in a.runs(history=True)}
        rows_b = {r["key"]: r for r in b.runs(history=True)}
        assert set(rows_a) == set(rows_b) == {s.key for s in specs}
        for key, ra in rows_a.items():
            rb = rows_b[key]
            assert rb["history"]["loss"] == pytest.approx(ra["history"]["loss"], rel=1e-5)
            assert len(b.layer_records(key)) == len(a.layer_records(key)) > 0
        assert sum("batched_with" in (r["metrics"] or {}) for r in rows_b.values()) == 16
    assert run_sweep(specs, tmp_path / "batched.db").skipped == 17


def test_stacked_twin_is_the_vmapped_model():
    """`train.stacked`: the twin's outputs and per-run gradients are those of vmap(functional_call)
    and of each run's own module (float32 rounding); a model with other parameters gets no twin."""
    import copy

    import torch
    from torch.func import functional_call, stack_module_state, vmap

    from gradvet.models.mlp import mlp
    from gradvet.train.stacked import stacked_twin

    models = [mlp(12, 3, 3, 8, activation="tanh", residual=True, seed=s) for s in range(3)]
    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    x = torch.randn(3, 5, 12, generator=torch.Generator().manual_seed(0))
    twin = stacked_twin(models[0], params)
    out = twin(x)
    base = copy.deepcopy(models[0]).to("meta")
    assert torch.equal(out, vmap(lambda p, b, xx: functional_call(base, (p, b), (xx,)))(params, buffers, x))
    grads = torch.autograd.grad(out.square().sum(), list(params.values()))
    for r, model in enumerate(models):
        own = torch.autograd.grad(model(x[r]).square().sum(), list(model.parameters()))
        for g, o in zip(grads, own):
            torch.testing.assert_close(g[r], o, rtol=1e-4, atol=1e-4)  # float32: products summed in another order
    assert stacked_twin(mlp(12, 3, 2, 8, norm="layer", seed=0), {"hidden.0.norm.weight": torch.ones(3, 8)}) is None
