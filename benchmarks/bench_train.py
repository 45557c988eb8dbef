"""Training-engine overhead: `gradvet.train.run` against a plain hand-written PyTorch loop.

Same model (digits MLP, depth 6, width 64, ReLU, He init), same batches, SGD,
1,000 steps; the engine records its loss and total gradient norm every step
(goal: <= 1.15x the plain loop), and by default also a per-layer probe trace
on every 10th step (reported separately). Runs alternate, five rounds; prints
medians and ratios.
One torch thread: on a 2-core machine whose other core is busy, a second
intra-op thread makes small-model timings erratic (seen: either side 3x
slower from one round to the next), which would swamp the overhead measured.

    .venv/bin/python benchmarks/bench_train.py
"""

from __future__ import annotations

import statistics
import time

import torch

from gradvet.data import load
from gradvet.models.build import build
from gradvet.spec import RunSpec
from gradvet.train import run
from gradvet.train.loop import BatchSampler, probe_every
from gradvet.train.optim import make_loss, make_optimizer

SPEC = RunSpec(depth=6, width=64, steps=1000, lr=0.1, batch_size=64, eval_every=0)


def plain_loop(spec: RunSpec, data) -> float:
    """The loop a person writes by hand; returns seconds per step."""
    generator = torch.Generator().manual_seed(spec.seed)
    sample = data.x_train[torch.randperm(data.x_train.shape[0], generator=generator)[:512]]
    model = build(spec, data.n_features, data.n_classes, False, sample=sample)
    loss_fn = make_loss(spec, data.task)
    optimizer = make_optimizer(spec, model.parameters())
    sampler = BatchSampler(data.x_train.shape[0], spec.batch_size, generator)
    start = time.perf_counter()
    for _ in range(spec.steps):
        idx = sampler.next()
        loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / spec.steps


def main() -> None:
    torch.set_num_threads(1)
    data = load(SPEC.data)
    plain_loop(SPEC.replace(steps=100), data)  # warm-up
    run(SPEC.replace(steps=100), dataset=data)
    engine, probed, plain, wall = [], [], [], []
    for _ in range(5):
        plain.append(plain_loop(SPEC, data))
        result = run(SPEC, dataset=data, probe=None)
        engine.append(result.metrics["step_time"])
        wall.append(result.metrics["wall_time"])
        probed.append(run(SPEC, dataset=data).metrics["step_time"])
    e, p, q = statistics.median(engine), statistics.median(plain), statistics.median(probed)
    print(f"digits MLP depth {SPEC.depth} width {SPEC.width}, {SPEC.steps} SGD steps, batch {SPEC.batch_size}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"plain PyTorch loop                    {1e3 * p:7.3f} ms/step")
    print(f"gradvet.train.run, history only       {1e3 * e:7.3f} ms/step   ratio {e / p:.3f} (goal <= 1.15)")
    print(f"gradvet.train.run, + probe trace      {1e3 * q:7.3f} ms/step   ratio {q / p:.3f} "
          f"(default: every {probe_every(SPEC.steps)}th step)")
    print(f"whole run (load, init, train, final eval): {statistics.median(wall):.2f} s for {SPEC.steps} steps")


if __name__ == "__main__":
    main()
