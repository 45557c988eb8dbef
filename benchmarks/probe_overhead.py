"""Probe overhead: a training step with gradvet's Probe against the same plain step.

Reference model (issue 4): MLP 784-256x8-10, batch 128, SGD, CPU; also a small
CNN. Contenders run in one process, interleaved in rounds; the figure is the
median time per step, and the ratio to the plain step. Goals: full probe every
step <= 1.10x; every=16 <= 1.02x. Cockpit's published figure for its cheapest
"economy" configuration tracked every step (1.5x, Schneider et al. 2021, Fig. 6)
is printed beside them; Cockpit itself runs here when it is installed.

    .venv/bin/python benchmarks/probe_overhead.py [--steps 60] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from gradvet import Probe

COCKPIT_ECONOMY_EVERY_STEP = 1.5  # Schneider, Dangel & Hennig, Cockpit, NeurIPS 2021, Fig. 6 (GPU, 3C3D)


def mlp_784() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(784, 256), nn.ReLU()]
    for _ in range(7):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    layers.append(nn.Linear(256, 10))
    return nn.Sequential(*layers)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def timed(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, every: int | None) -> float:
    """Seconds per SGD step; `every` None means no probe."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    ctx = Probe(model, opt, every=every) if every else contextlib.nullcontext()
    with ctx:
        start = time.perf_counter()
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps


def compare(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, rounds: int) -> None:
    contenders = {"plain": None, "probe every step": 1, "probe every=16": 16}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for every in contenders.values():
        timed(model, x, y, 5, every)  # warm-up
    for _ in range(rounds):
        for label, every in contenders.items():
            times[label].append(timed(model, x, y, steps, every))
    base = statistics.median(times["plain"])
    print(f"\n{name}: batch {x.shape[0]}, {steps} steps x {rounds} rounds, torch threads {torch.get_num_threads()}")
    for label, values in times.items():
        t = statistics.median(values)
        print(f"  {label:18s} {1e3 * t:8.2f} ms/step   ratio {t / base:5.3f}")
    print(f"  {'Cockpit economy':18s} {'(published)':>8s}          ratio {COCKPIT_ECONOMY_EVERY_STEP:5.3f}  "
          "(every step; Schneider et al. 2021 Fig. 6)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    compare("MLP 784-256x8-10", mlp_784(), torch.randn(128, 784), torch.randint(0, 10, (128,)), args.steps, args.rounds)
    compare("small CNN (2 conv + 2 linear, 28x28)", small_cnn(), torch.randn(128, 1, 28, 28),
            torch.randint(0, 10, (128,)), max(args.steps // 3, 10), args.rounds)


if __name__ == "__main__":
    main()
