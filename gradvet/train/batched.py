"""Many runs of one architecture trained together as one vectorised model (torch.func).

Runs that differ only in `VARYING` (seed, init, learning rate, weight decay) share every
shape, so their parameters stack: `torch.func.stack_module_state` turns R models into
tensors with a leading run dimension, and `vmap(functional_call)` evaluates all R models
on their own mini-batches in one call, and `vmap(grad_and_value(...))` gives each run its
own gradient and loss. An MLP whose parameters are all Linear layers' runs instead as a
stacked twin (`train.stacked`: one fused baddbmm per layer, plain autograd over the sum of
the runs' losses), the same numbers without torch.func's machinery. On a small machine a
sweep of small MLPs is dominated by Python overhead per step; here that overhead is paid
once per step for all R runs.

Each run reproduces `gradvet.train.run(spec)` step by step: the same initial weights
(each model is built from its own spec and seed), the same batches (each run's own seeded
sampler, drawn in the same order), the same loss, total gradient norm before clipping,
clipping by norm (coefficient clip / (norm + 1e-6), at most 1, as torch's
clip_grad_norm_) and by value, and the same SGD update (weight decay added to the
gradient, momentum buffer as torch.optim.SGD with dampening 0). A run whose loss or
gradient norm turns NaN/Inf stops there (status 'diverged', no update at that step) while
the others go on. Losses agree with the sequential runs to float32 rounding (the batched
matrix products round differently; a chaotic run, e.g. at a huge learning rate, amplifies
that rounding as it would amplify any perturbation).

The default probe trace is kept too, measured inside the batched step: on each sampled step
(every ceil(steps / 50)-th, as in `train.run`) the gradients come from
`train.batched_probe.BatchedProbe`, which also returns every run's per-layer data, and its
per-run reductions give each run the layer records its sequential `gradvet.Probe` records
(no run is replayed in a module of its own). A probe metric registered beyond the built-in
ones sends the runs one by one (`why_sequential`).

Batchable: MLPs without batch norm (its running statistics are per-module state) and
without pre-training, optimiser sgd or momentum, not monitored (`spec.monitor`). Anything else trains one after another
(`why_sequential` says why). Per-run wall and step times are the group's divided by the
number of runs (step time: per step the group took); `metrics["batched_with"]` says how many runs shared the model.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from gradvet.spec import RunSpec
from gradvet.train.batched_probe import BatchedProbe
from gradvet.train.batched_probe import why_not as why_not_probed
from gradvet.train.loop import AUTO, BatchSampler, _record_eval, check_probe, probe_every
from gradvet.train.result import Run
from gradvet.train.stacked import stacked_twin

VARYING = ("seed", "init", "lr", "weight_decay")
OPTIMIZERS = ("sgd", "momentum")


NOT_VMAPPABLE = {"binary_step": "binary_step's derivative is a custom autograd function vmap cannot batch",
                 "rrelu": "rrelu's random slopes are not supported under vmap"}


def why_sequential(spec: RunSpec) -> str | None:
    """Why `spec` cannot train in a batch (None: it can)."""
    if spec.activation in NOT_VMAPPABLE:
        return NOT_VMAPPABLE[spec.activation]
    if spec.loss == "sigmoid_cross_entropy":
        return "the sigmoid cross-entropy builds one-hot targets, which vmap cannot batch"
    if spec.model != "mlp":
        return f"model {spec.model!r} is recurrent"
    if spec.norm == "batch":
        return "batch norm keeps running statistics per module"
    if spec.pretrain:
        return "layer-wise pre-training runs before the batch"
    if spec.optimizer not in OPTIMIZERS:
        return f"optimizer {spec.optimizer!r} (batched: {', '.join(OPTIMIZERS)})"
    if spec.monitor:
        return "the monitor watches every step of its own module"
    return why_not_probed()  # not the spec's doing: a probe metric registered that batched training cannot record


def batch_key(spec: RunSpec) -> str | None:
    """Specs with equal keys train together; None for a spec that trains alone."""
    if why_sequential(spec) is not None:
        return None
    fields = {k: v for k, v in spec.to_dict().items() if k not in VARYING}
    return json.dumps(fields, sort_keys=True, default=str)


def _per_run(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """A (R,) vector shaped to broadcast against a stacked (R, ...) tensor."""
    return torch.tensor(values, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))


def run_batched(specs: Sequence[RunSpec], probe: str | None = AUTO, dataset=None) -> list[Run]:
    """Train `specs` (equal `batch_key`) together; one Run per spec, in order."""
    from gradvet.base.errors import GradvetError
    from gradvet.data import load
    from gradvet.models.build import build
    from gradvet.train.optim import make_loss

    specs = list(specs)
    keys = {batch_key(s) for s in specs}
    if len(keys) != 1 or None in keys:
        raise GradvetError("run_batched needs specs that differ only in " + ", ".join(VARYING)
                           + " and can be batched (see why_sequential).")
    start_time = time.perf_counter()
    first = specs[0]
    data = dataset if dataset is not None else load(first.data, **dict(first.data_options))
    n = data.x_train.shape[0]
    n_out = 1 if data.task == "regression" else data.n_classes
    models, samplers = [], []
    for spec in specs:  # exactly as train.run: the sample for LSUV, then the batches, from one generator
        generator = torch.Generator().manual_seed(spec.seed)
        sample = data.x_train[torch.randperm(n, generator=generator)[:512]]
        model = build(spec, data.n_features, n_out, data.sequence, sample=sample)
        model.train()
        models.append(model)
        samplers.append(BatchSampler(n, spec.batch_size, generator))
    loss_fn = make_loss(first, data.task)
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}  # plain tensors: torch.func differentiates
    names = list(params)
    stacked = [params[k] for k in names]
    base = copy.deepcopy(models[0]).to("meta")

    def one_loss(p, b, x, y):
        return loss_fn(functional_call(base, (p, b), (x,)), y)

    def one_output(p, b, x):
        return functional_call(base, (p, b), (x,))

    # per run: d loss / d params and the loss, all runs in one call (gradients come out contiguous)
    batched_grad = vmap(grad_and_value(one_loss))
    batched_output = vmap(one_output, in_dims=(0, 0, None))
    twin = stacked_twin(models[0], params) if not buffers else None
    if twin is not None:  # the same numbers without torch.func's machinery (`train.stacked`)
        per_run_loss = vmap(loss_fn)
        for t in stacked:
            t.requires_grad_()

        def plain_grad(x, y):
            losses = per_run_loss(twin(x), y)
            return dict(zip(names, torch.autograd.grad(losses.sum(), stacked))), losses.detach()
    else:
        def plain_grad(x, y):
            return batched_grad(params, buffers, x, y)
    R = len(specs)
    lr = {id(t): _per_run([s.lr for s in specs], t) for t in stacked}
    wd = {id(t): _per_run([s.weight_decay for s in specs], t) for t in stacked}
    any_wd = any(s.weight_decay for s in specs)
    same_lr = all(s.lr == first.lr for s in specs)
    momentum = first.momentum if first.optimizer == "momentum" else 0.0
    bufs: list[torch.Tensor | None] = [None] * len(stacked)
    histories = [{"step": [], "loss": [], "grad_norm": [], "eval_step": [], "test_loss": [], "test_accuracy": []}
                 for _ in specs]
    active = [True] * R
    diverged_at: list[int | None] = [None] * R

    probe_ = None
    if probe == AUTO:
        sample = (data.x_train[:first.batch_size], data.y_train[:first.batch_size])
        probe_ = BatchedProbe(models[0], base, loss_fn, R, probe_every(first.steps), sample,
                              params if twin is not None else None)
    train_start = time.perf_counter()
    step = 0
    for step in range(1, first.steps + 1):
        idx = torch.stack([s.next() for s in samplers])
        xb, yb = data.x_train[idx], data.y_train[idx]
        sampled = probe_ is not None and probe_.sampled(step - 1)
        if sampled:
            grad_of, losses, probed = probe_.gradients(params, buffers, xb, yb)
        else:
            grad_of, losses = plain_grad(xb, yb)
        grads = [grad_of[k] for k in names]
        per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1)
        norms = per_tensor.norm(dim=1)
        if first.clip is not None:
            coef = torch.clamp(first.clip / (norms + 1e-6), max=1.0)
            grads = [g * coef.view(-1, *([1] * (g.dim() - 1))) for g in grads]
        if first.clip_value is not None:
            grads = [g.clamp(-first.clip_value, first.clip_value) for g in grads]
        loss_values, norm_values = torch.stack([losses, norms]).tolist()
        recorded = [i for i in range(R) if active[i]]
        stepping = []
        for i in recorded:
            h = histories[i]
            h["step"].append(step)
            h["loss"].append(loss_values[i])
            h["grad_norm"].append(norm_values[i])
            if math.isfinite(loss_values[i]) and math.isfinite(norm_values[i]):
                stepping.append(i)
            else:
                active[i], diverged_at[i] = False, step
        every_run = len(stepping) == R
        if not every_run:
            mask = torch.zeros(R, dtype=torch.bool)
            mask[stepping] = True
        with torch.no_grad():
            before = [p.clone() for p in stacked] if sampled else []
            for k, (p, g) in enumerate(zip(stacked, grads)):
                d = g.add(wd[id(p)] * p) if any_wd else g  # torch.optim.SGD: grad + weight_decay * w
                if momentum:
                    bufs[k] = d.clone() if bufs[k] is None else bufs[k].mul_(momentum).add_(d)
                    d = bufs[k]
                if every_run and same_lr:
                    p.add_(d, alpha=-first.lr)
                elif every_run:
                    p.addcmul_(lr[id(p)], d, value=-1.0)
                else:
                    keep = mask.view(-1, *([1] * (p.dim() - 1)))
                    p.copy_(torch.where(keep, p - lr[id(p)] * d, p))
        if sampled:
            clipped = first.clip is not None or first.clip_value is not None
            applied = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1) if clipped else per_tensor
            with torch.no_grad():
                probe_.record(step - 1, recorded, stepping, probed, xb, names, per_tensor, applied, before, stacked)
        if first.eval_every and step % first.eval_every == 0 and step != first.steps and stepping:
            results = _evaluate(batched_output, params, buffers, loss_fn, data)
            for i in stepping:
                _record_eval(histories[i], step, *results[i])
        if not any(active):
            break
    train_time = time.perf_counter() - train_start
    group_steps = step
    final = _evaluate(batched_output, params, buffers, loss_fn, data)
    wall = time.perf_counter() - start_time
    runs = []
    for i, spec in enumerate(specs):
        h = histories[i]
        steps_done = (h["step"][-1] if h["step"] else 0) if diverged_at[i] is None else diverged_at[i] - 1
        test_loss, test_acc = final[i]
        if diverged_at[i] is None:
            _record_eval(h, steps_done, test_loss, test_acc)
        finite = [v for v in h["loss"] if math.isfinite(v)]
        run = Run(spec=spec, status="diverged" if diverged_at[i] is not None else "done", history=h)
        run.metrics = {
            "final_loss": h["loss"][-1] if h["loss"] else None,
            "final_finite_loss": finite[-1] if finite else None,
            "test_loss": test_loss, "test_accuracy": test_acc, "steps_done": steps_done,
            "diverged_at": diverged_at[i], "wall_time": wall / R,
            "step_time": train_time / R / max(group_steps, 1), "batched_with": R,
        }
        if probe_ is not None:
            run.layer_records = probe_.rows[i]
        runs.append(run)
    return runs


@torch.no_grad()
def _evaluate(batched_output, params, buffers, loss_fn, data) -> list[tuple[float, float | None]]:
    """(test loss, test accuracy) of every run, all runs on the whole test set in one call."""
    out = batched_output(params, buffers, data.x_test)
    losses = vmap(loss_fn, in_dims=(0, None))(out, data.y_test).tolist()
    if data.task == "regression":
        return [(loss, None) for loss in losses]
    accs = (out.argmax(dim=2) == data.y_test).float().mean(dim=1).tolist()
    return list(zip(losses, accs))


def groups_of(specs: Sequence[RunSpec]) -> tuple[list[list[int]], list[int]]:
    """Indices of `specs` by `batch_key`: the groups that could train together (in first-seen
    order, singletons included) and the specs that cannot be batched at all."""
    groups: dict[str, list[int]] = {}
    unbatchable: list[int] = []
    for i, spec in enumerate(specs):
        key = batch_key(spec)
        (groups.setdefault(key, []) if key is not None else unbatchable).append(i)
    return list(groups.values()), unbatchable


def train_specs(specs: Sequence[RunSpec], probe: str | None = AUTO, dataset=None) -> list[Run]:
    """Every spec trained, batchable groups together and the rest one after another; runs in
    the order of `specs`."""
    check_probe(probe)
    from gradvet.train.loop import run

    groups, alone = groups_of(specs)
    out: dict[int, Run] = {}
    for members in groups:
        if len(members) == 1:
            alone.extend(members)
            continue
        for i, result in zip(members, run_batched([specs[i] for i in members], probe=probe, dataset=dataset)):
            out[i] = result
    for i in alone:
        out[i] = run(specs[i], probe=probe, dataset=dataset)
    return [out[i] for i in range(len(specs))]


def describe(specs: Sequence[RunSpec]) -> dict[str, Any]:
    """How `specs` would train: the sizes of the batched groups and the runs that go alone."""
    groups, unbatchable = groups_of(specs)
    sizes = sorted((len(g) for g in groups), reverse=True)
    return {"groups": [s for s in sizes if s > 1], "alone": len(unbatchable) + sizes.count(1)}
