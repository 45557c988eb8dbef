"""Probe overhead: a training step with gradvet's Probe against the same plain step.

Reference model (issue 4): MLP 784-256x8-10, batch 128, SGD, CPU; also a small
CNN. Contenders run in one process, interleaved in rounds; the figure is the
median time per step, and the ratio to the plain step. Goals: full probe every
step <= 1.10x; every=16 <= 1.02x. Cockpit's published figure for its cheapest
"economy" configuration tracked every step (1.5x, Schneider et al. 2021, Fig. 6)
is printed beside them. When `cockpit` (cockpit-for-pytorch, with
backpack-for-pytorch) is importable, Cockpit's "economy" configuration is also
measured on the MLP, tracked every step, as a contender in the same rounds: its
standard usage (model and loss extended by BackPACK, individual losses, the
`with cockpit(step, info=...)` block around `loss.backward`) on a copy of the
model, so the other contenders run without BackPACK's hooks. backpack imports
torchvision only in backpack.utils.examples, which this script does not use, and
cockpit 1.0.2 imports pkg_resources (setuptools < 81).

    .venv/bin/python benchmarks/probe_overhead.py [--steps 60] [--rounds 5] [--cockpit-steps 6]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
import types
import warnings

import torch
from torch import nn

from gradvet import Probe

COCKPIT_ECONOMY_EVERY_STEP = 1.5  # Schneider, Dangel & Hennig, Cockpit, NeurIPS 2021, Fig. 6 (GPU, 3C3D)
COCKPIT_LABEL = "Cockpit economy (measured)"


def load_cockpit() -> tuple[object | None, str]:
    """(namespace with Cockpit, configuration, extend; or None) and a line saying which, or why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cockpit 1.0.2 imports the deprecated pkg_resources
            from backpack import extend
            from cockpit import Cockpit
            from cockpit.utils.configuration import configuration
    except Exception as exc:  # noqa: BLE001 - any import failure means "not measured here"
        if isinstance(exc, ModuleNotFoundError) and exc.name in ("cockpit", "backpack"):
            why = f"Cockpit not installed ({exc.name} missing): pip install cockpit-for-pytorch"
        else:
            why = f"Cockpit not importable: {type(exc).__name__}: {exc}"
        return None, why + "; only its published figure is shown."
    from importlib.metadata import version
    found = types.SimpleNamespace(Cockpit=Cockpit, configuration=configuration, extend=extend)
    return found, (f"Cockpit measured: cockpit-for-pytorch {version('cockpit-for-pytorch')}, "
                   f"backpack-for-pytorch {version('backpack-for-pytorch')}, torch {torch.__version__}")


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


def timed_cockpit(cp, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per SGD step with Cockpit's "economy" quantities tracked every step.

    `model` must already be BackPACK-extended; a fresh Cockpit per call, as Probe is.
    """
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = cp.extend(nn.CrossEntropyLoss(reduction="mean"))
    individual_loss_fn = nn.CrossEntropyLoss(reduction="none")
    cockpit = cp.Cockpit(model.parameters(), quantities=cp.configuration("economy"))
    with warnings.catch_warnings():
        # BackPACK's full backward hooks warn that the input needs no gradient; harmless here.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        start = time.perf_counter()
        for step in range(steps):
            outputs = model(x)
            loss = loss_fn(outputs, y)
            losses = individual_loss_fn(outputs, y)
            with cockpit(step, info={"batch_size": x.shape[0], "individual_losses": losses,
                                     "loss": loss, "optimizer": opt}):
                loss.backward(create_graph=cockpit.create_graph(step))
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps


def compare(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, rounds: int,
            cockpit=None, cockpit_steps: int = 6) -> None:
    contenders = {"plain": None, "probe every step": 1, "probe every=16": 16}
    runs = {label: (lambda n, every=every: timed(model, x, y, n, every)) for label, every in contenders.items()}
    if cockpit is not None:
        # Cockpit's per-example quantities cost seconds per step on a CPU, so it runs
        # fewer steps per round (the figure is per step either way).
        cockpit_model = cockpit.extend(copy.deepcopy(model))  # BackPACK's hooks stay off the shared model
        runs[COCKPIT_LABEL] = lambda n: timed_cockpit(cockpit, cockpit_model, x, y, min(n, cockpit_steps))
    times: dict[str, list[float]] = {k: [] for k in runs}
    for label, run in runs.items():
        run(2 if label == COCKPIT_LABEL else 5)  # warm-up
    for _ in range(rounds):
        for label, run in runs.items():
            times[label].append(run(steps))
    base = statistics.median(times["plain"])
    width = max(len(label) for label in [*times, "Cockpit economy (published)"])
    print(f"\n{name}: batch {x.shape[0]}, {steps} steps x {rounds} rounds, torch threads {torch.get_num_threads()}")
    for label, values in times.items():
        t = statistics.median(values)
        note = f"  ({min(steps, cockpit_steps)} steps/round)" if label == COCKPIT_LABEL else ""
        print(f"  {label:{width}s} {1e3 * t:8.2f} ms/step   ratio {t / base:5.3f}{note}")
    print(f"  {'Cockpit economy (published)':{width}s} {'':8s}          ratio {COCKPIT_ECONOMY_EVERY_STEP:5.3f}  "
          "(every step; Schneider et al. 2021 Fig. 6, GPU, 3C3D)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cockpit-steps", type=int, default=6, help="steps per round for Cockpit, when installed")
    args = parser.parse_args()
    torch.manual_seed(0)
    cockpit, cockpit_line = load_cockpit()
    print(cockpit_line)
    compare("MLP 784-256x8-10", mlp_784(), torch.randn(128, 784), torch.randint(0, 10, (128,)), args.steps, args.rounds,
            cockpit=cockpit, cockpit_steps=args.cockpit_steps)
    compare("small CNN (2 conv + 2 linear, 28x28)", small_cnn(), torch.randn(128, 1, 28, 28),
            torch.randint(0, 10, (128,)), max(args.steps // 3, 10), args.rounds)


if __name__ == "__main__":
    main()
