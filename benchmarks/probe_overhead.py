"""Probe overhead: a training step with gradvet's Probe, and with its peers' per-step diagnostics,
against the same plain step (issues 4 and 17).

Models: the reference MLP 784-256x8-10 (batch 128, SGD), a small CNN (2 conv + 2 linear on 28x28,
batch 128, SGD) and a small GPT-2 (transformers' GPT2LMHeadModel, 4 layers, width 128, 4 heads,
random weights, vocabulary 1000, sequence 128, batch 8 of synthetic tokens, AdamW). Contenders,
each on the same model, data and optimiser:
- plain: forward, backward, optimiser step;
- gradvet Probe tracked every step, and every=16;
- gradvet Monitor (`gradvet.monitor.Monitor`, default detectors);
- Lightning `grad_norm`: after backward, `lightning.pytorch.utilities.grad_norm(model, 2)` (a norm
  per parameter, then the total) turned into a dict of floats, as a logger gets it (the same
  computation written out when Lightning is not installed);
- W&B `watch`-style histograms: per parameter, its gradient's min and max on the host, then
  `torch.histc` with 64 bins copied to the host, every step (what `wandb.watch(log="gradients",
  log_freq=1)` computes; wandb itself is not involved);
- Cockpit's cheapest "economy" configuration tracked every step, on the MLP, when `cockpit`
  (cockpit-for-pytorch, with backpack-for-pytorch) is importable: its standard usage (model and
  loss extended by BackPACK, individual losses, the `with cockpit(step, info=...)` block around
  `loss.backward`) on a copy of the model, so the other contenders run without BackPACK's hooks.
  Its published figure (1.5x, Schneider et al. 2021, Fig. 6, GPU) is printed beside. backpack
  imports torchvision only in backpack.utils.examples, unused here, and cockpit 1.0.2 imports
  pkg_resources (setuptools < 81). trainscope is not on the package index, so it is not measured.

Contenders run in one process, interleaved in rounds; each keeps its Probe or Monitor object across
the rounds (re-entered each round), so every=16 records one step in 16 however short a round is.
The figure is the median time per step over the rounds, and the ratio to the plain step. Goals:
probe every step <= 1.10x on the MLP and on GPT-2, every=16 <= 1.02x (issue 17). Where a goal is
missed, a profile of the probe's recorded steps says where the time goes (the probe's own
functions by cumulative time, cProfile), unless --no-profile.

    .venv/bin/python benchmarks/probe_overhead.py [--steps 60] [--rounds 5] [--cockpit-steps 6]
    .venv/bin/python benchmarks/probe_overhead.py --quick      # a few seconds: 2 rounds of a few steps
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import functools
import io
import pstats
import statistics
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gradvet import Probe
from gradvet.monitor import Monitor

COCKPIT_ECONOMY_EVERY_STEP = 1.5  # Schneider, Dangel & Hennig, Cockpit, NeurIPS 2021, Fig. 6 (GPU, 3C3D)
COCKPIT_LABEL = "Cockpit economy (measured)"
GOAL_EVERY_STEP = 1.10  # probe every step, on the MLP and on GPT-2
GOAL_EVERY_16 = 1.02
HISTOGRAM_BINS = 64  # wandb.watch's default


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


def load_grad_norm() -> tuple[Callable[[nn.Module, float], dict], str]:
    """Lightning's grad_norm, or the same computation written out where Lightning is not installed."""
    try:
        from importlib.metadata import version

        from lightning.pytorch.utilities import grad_norm
        return grad_norm, f"lightning {version('lightning')}"
    except ImportError:
        def grad_norm(module: nn.Module, norm_type: float | int | str,  # type: ignore[misc]  # Lightning's, written out
                      group_separator: str = "/") -> dict:
            norm_type = float(norm_type)
            norms = {f"grad_{norm_type}_norm{group_separator}{name}": p.grad.data.norm(norm_type)
                     for name, p in module.named_parameters() if p.grad is not None}
            if norms:
                norms[f"grad_{norm_type}_norm_total"] = torch.tensor(list(norms.values())).norm(norm_type)
            return norms
        return grad_norm, "lightning not installed: its grad_norm written out"


# -- models ------------------------------------------------------------------------------------
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


@dataclass
class Workload:
    """A model, its batch, its loss and its optimiser; `steps_share`: its steps per round relative to --steps."""

    name: str
    model: nn.Module
    loss: Callable[[], torch.Tensor]
    optimizer: torch.optim.Optimizer
    steps_share: float = 1.0
    cockpit_data: tuple[torch.Tensor, torch.Tensor] | None = None  # (x, y) of a classifier Cockpit can run on


def classifier(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps_share: float) -> Workload:
    loss_fn = nn.CrossEntropyLoss()
    return Workload(f"{name}: batch {x.shape[0]}, SGD", model, lambda: loss_fn(model(x), y),
                    torch.optim.SGD(model.parameters(), lr=0.01), steps_share, (x, y))


def gpt2(layers: int = 4, width: int = 128, heads: int = 4, sequence: int = 128, batch: int = 8,
         vocabulary: int = 1000) -> Workload | str:
    """The small GPT-2 workload, or why it cannot run here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from transformers import GPT2Config, GPT2LMHeadModel
            from transformers.utils import logging as hf_logging
    except ImportError as exc:
        return f"GPT-2 skipped: transformers not importable ({exc})"
    hf_logging.set_verbosity_error()
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=heads, n_positions=sequence, vocab_size=vocabulary)
    model = GPT2LMHeadModel(config)
    tokens = torch.randint(0, vocabulary, (batch, sequence))
    return Workload(f"GPT-2 {layers} layers, width {width}, {heads} heads, vocabulary {vocabulary}: batch {batch} x "
                    f"sequence {sequence}, AdamW", model, lambda: model(tokens, labels=tokens).loss,
                    torch.optim.AdamW(model.parameters(), lr=1e-4), 1 / 6)


# -- contenders --------------------------------------------------------------------------------
@dataclass
class Contender:
    """What runs around the plain step: `context` (entered for each round: a Probe or Monitor kept across
    rounds) and `after_backward` (called between backward and the optimiser step)."""

    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    after_backward: Callable[[], object] | None = None


def histograms(model: nn.Module) -> Callable[[], list]:
    """W&B watch's gradient histograms: per parameter, min and max read on the host, then histc (64 bins) copied there."""
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> list:
        out = []
        for p in params:
            g = p.grad.detach().reshape(-1)  # type: ignore[union-attr]  # after backward
            low, high = g.min().item(), g.max().item()
            out.append((low, high, torch.histc(g, bins=HISTOGRAM_BINS, min=low, max=high).tolist()))
        return out

    return run


def contenders(work: Workload, grad_norm) -> dict[str, Contender]:
    model, opt = work.model, work.optimizer
    every_step, every_16, monitor = Probe(model, opt), Probe(model, opt, every=16), Monitor(model, opt)
    return {
        "plain": Contender(),
        "probe every step": Contender(lambda: every_step),
        "probe every=16": Contender(lambda: every_16),
        "gradvet Monitor": Contender(lambda: monitor),
        "Lightning grad_norm": Contender(after_backward=lambda: {k: v.item() for k, v in grad_norm(model, 2).items()}),
        "W&B watch histograms": Contender(after_backward=histograms(model)),
    }


def timed(work: Workload, contender: Contender, steps: int) -> float:
    """Seconds per training step with `contender` around it."""
    opt, after = work.optimizer, contender.after_backward
    with contender.context():
        start = time.perf_counter()
        for _ in range(steps):
            loss = work.loss()
            loss.backward()
            if after is not None:
                after()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps


def timed_cockpit(cp, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per SGD step with Cockpit's "economy" quantities tracked every step.

    `model` must already be BackPACK-extended; a fresh Cockpit per call.
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


def profile_probe(work: Workload, steps: int, top: int = 16) -> str:
    """Where a recorded step's extra time goes: cProfile of `steps` steps with a probe every step; the
    probe's own functions, and torch's calls made from them, by cumulative time per step."""
    profiler = cProfile.Profile()
    with Probe(work.model, work.optimizer):  # entered outside the profile: its set-up is once per probe
        timed(work, Contender(), 2)
        profiler.enable()
        timed(work, Contender(), steps)
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_, calls, own, cumulative, callers) in stats.items():
        if "gradvet/probe" in file:
            rows.append((cumulative, own, calls, f"{file.split('gradvet/', 1)[-1]}:{line} {func}"))
        elif file == "~":  # a builtin (torch's ops): the part of it called from the probe's functions
            mine = [v for (f, _, _), v in callers.items() if "gradvet/probe" in f]
            if mine:
                rows.append((sum(v[3] for v in mine), sum(v[2] for v in mine), sum(v[1] for v in mine), func))
    rows.sort(reverse=True)
    total = sum(own for _, own, _, _ in rows)
    out = io.StringIO()
    print(f"    profile (cProfile, {steps} recorded steps; the probe's code and the torch calls it makes: "
          f"{1e3 * total / steps:.2f} ms per step in all; per step: ms cumulative, ms own, calls):", file=out)
    for cumulative, own, calls, where in rows[:top]:
        print(f"      {1e3 * cumulative / steps:7.2f} {1e3 * own / steps:7.2f} {calls / steps:7.1f}  {where}", file=out)
    return out.getvalue().rstrip()


def typical(label: str, per_round: list[float]) -> float:
    """The time per step of a contender: the median over rounds, except for a probe recording one step
    in N, whose recorded steps fall unevenly on the rounds (a round shorter than N holds one or none):
    the mean over rounds, which weighs every step once."""
    return statistics.fmean(per_round) if "every=" in label else statistics.median(per_round)


def compare(work: Workload, steps: int, rounds: int, grad_norm, cockpit=None, cockpit_steps: int = 6,
            profile: bool = True) -> None:
    torch.manual_seed(0)
    runs: dict[str, Callable[[int], float]] = {
        label: functools.partial(timed, work, c) for label, c in contenders(work, grad_norm).items()}
    if cockpit is not None and work.cockpit_data is not None:
        # Cockpit's per-example quantities cost seconds per step on a CPU, so it runs
        # fewer steps per round (the figure is per step either way).
        cockpit_model = cockpit.extend(copy.deepcopy(work.model))  # BackPACK's hooks stay off the shared model
        x, y = work.cockpit_data

        def run_cockpit(n: int) -> float:
            return timed_cockpit(cockpit, cockpit_model, x, y, min(n, cockpit_steps))

        runs[COCKPIT_LABEL] = run_cockpit
    times: dict[str, list[float]] = {k: [] for k in runs}
    for run in runs.values():
        run(2)  # warm-up
    for _ in range(rounds):
        for label, run in runs.items():
            times[label].append(run(steps))
    per_step = {label: typical(label, values) for label, values in times.items()}
    base = per_step["plain"]
    ratio = {label: value / base for label, value in per_step.items()}
    width = max(len(label) for label in [*times, "Cockpit economy (published)"])
    print(f"\n{work.name}; {steps} steps x {rounds} rounds, torch threads {torch.get_num_threads()}")
    for label in times:
        note = f"  ({min(steps, cockpit_steps)} steps/round)" if label == COCKPIT_LABEL else ""
        print(f"  {label:{width}s} {1e3 * per_step[label]:8.2f} ms/step   ratio {ratio[label]:6.3f}{note}")
    if work.cockpit_data is not None:
        print(f"  {'Cockpit economy (published)':{width}s} {'':8s}          ratio {COCKPIT_ECONOMY_EVERY_STEP:6.3f}  "
              "(every step; Schneider et al. 2021 Fig. 6, GPU, 3C3D)")
    goals = [("probe every=16", GOAL_EVERY_16)]
    if not work.name.startswith("small CNN"):
        goals.insert(0, ("probe every step", GOAL_EVERY_STEP))
    missed = False
    for label, goal in goals:
        met = ratio[label] <= goal
        missed |= not met
        print(f"  goal: {label} <= {goal:.2f}x: {'met' if met else 'NOT met'} ({ratio[label]:.3f}x)")
    if missed and profile:
        print(profile_probe(work, max(steps, 4)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60, help="steps per round on the MLP (CNN a third, GPT-2 a sixth)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cockpit-steps", type=int, default=6, help="steps per round for Cockpit, when installed")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--models", default="mlp,cnn,gpt2", help="comma-separated: mlp, cnn, gpt2")
    parser.add_argument("--quick", action="store_true", help="a few seconds: --steps 12 --rounds 2, no profile")
    parser.add_argument("--no-profile", action="store_true", help="no profile where a goal is missed")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds, args.no_profile = 12, 2, True
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cockpit, cockpit_line = load_cockpit()
    grad_norm, grad_norm_line = load_grad_norm()
    print(f"torch {torch.__version__}, CPU; {cockpit_line}; Lightning grad_norm from {grad_norm_line}; "
          "trainscope is not on the package index: not measured.")
    chosen = set(args.models.split(","))
    works: list[Workload | str] = []
    if "mlp" in chosen:
        works.append(classifier("MLP 784-256x8-10", mlp_784(), torch.randn(128, 784), torch.randint(0, 10, (128,)), 1))
    if "cnn" in chosen:
        works.append(classifier("small CNN (2 conv + 2 linear, 28x28)", small_cnn(), torch.randn(128, 1, 28, 28),
                                torch.randint(0, 10, (128,)), 1 / 3))
    if "gpt2" in chosen:
        works.append(gpt2())
    for work in works:
        if isinstance(work, str):
            print(f"\n{work}")
            continue
        compare(work, max(round(args.steps * work.steps_share), 2), args.rounds, grad_norm,
                cockpit=cockpit if work is works[0] and "mlp" in chosen else None,  # Cockpit on the MLP only
                cockpit_steps=args.cockpit_steps, profile=not args.no_profile)


if __name__ == "__main__":
    main()
