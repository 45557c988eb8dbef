"""`activations`: ten activations in deep MLPs of depth 2 to 32, each with its matching init.

For every activation f and depth L (hidden layers of WIDTH units, plain SGD,
the same steps and learning rate for all) it trains the net and reads:

- the backward signal delta_l = ||dL/dz_l|| of each hidden layer (z_l the
  output of its linear map), as `gradvet.diagnose` reads it from the run's
  probe trace, at initialisation (the first recorded step, before any update)
  and after training (the last recorded step); the headline number is the
  first/last ratio delta_1 / delta_L (about 1: the signal keeps its size;
  << 1: it vanishes on the way down; >> 1: it grows);
- the final test accuracy, and the steps to reach TARGET_ACCURACY on the test
  set, read from the evaluation history (every eval_every steps; "not reached"
  when no evaluation got there);
- the fraction of dead units (f'(z) = 0 for every example of the probed
  batch) and of saturated units (|f'(z)| below 5% of max |f'|), averaged over
  the hidden layers, after training.

Matching inits (`INITS`): Var(W) = c / n_in with c chosen for the activation:

- relu, leaky_relu, elu, gelu, silu, mish -> he, Var(W) = 2 / n_in (He et al.
  2015): f' is about 1 for z > 0 and about 0 for z < 0, so E[f'(z)^2] is about
  1/2 and the factor 2 keeps Var(delta_l) = n Var(W) E[f'^2] Var(delta_{l+1})
  level; the smooth members (gelu, silu, mish, elu) are ReLU-shaped and take
  the same init (PyTorch's `calculate_gain` gives sqrt(2) for relu and about
  sqrt(2) for leaky_relu with a small slope).
- selu -> lecun, Var(W) = 1 / n_in: the condition under which SELU's fixed point
  (mean 0, variance 1) attracts (Klambauer et al. 2017, "Self-Normalizing
  Neural Networks"); He's factor 2 would double the variance SELU already
  restores.
- sigmoid, tanh, softplus -> xavier, Var(W) = 2 / (n_in + n_out) (Glorot &
  Bengio 2010; = 1/n for square layers): derived for activations that are
  close to linear near 0 and never switch units off, and the standard init of
  the sigmoid family (PyTorch's `calculate_gain` is 1 for sigmoid; it has no
  entry for softplus). Their derivatives are strictly positive everywhere
  (softplus' = sigmoid), so no half of the units is switched off and He's
  factor 2, which compensates exactly for that, does not apply; and no init
  repairs sigmoid's f' <= 1/4, which is the article's point.
"""

from __future__ import annotations

import math
from typing import Any

from gradvet.data import load
from gradvet.experiments.base import Context, experiment, fmt_mean_sd, mean_sd
from gradvet.probe import Diagnosis, Trace, diagnose
from gradvet.spec import RunSpec
from gradvet.train.result import Run

INITS: dict[str, str] = {
    "sigmoid": "xavier", "tanh": "xavier", "relu": "he", "leaky_relu": "he", "elu": "he",
    "selu": "lecun", "gelu": "he", "silu": "he", "mish": "he", "softplus": "xavier",
}
QUICK_ACTIVATIONS = ("sigmoid", "tanh", "relu", "selu")
DEPTHS = (2, 4, 8, 16, 32)
QUICK_DEPTHS = (2, 8, 16)
WIDTH = 64
STEPS, QUICK_STEPS = 800, 100
EVAL_EVERY, QUICK_EVAL_EVERY = 25, 10
LR = 0.1
TARGET_ACCURACY = 0.9
PROFILE_COLUMNS = 8  # layers shown in the per-layer profile table


def activation_spec(ctx: Context, activation: str, depth: int) -> RunSpec:
    """The run for one activation at one depth: WIDTH units per hidden layer, its matching init,
    plain SGD with LR (no momentum or Adam, which rescale gradients and hide vanishing)."""
    data, options = ctx.data_spec()
    quick = ctx.quick
    return RunSpec(data=data, data_options=options, activation=activation, init=INITS[activation], depth=depth,
                   width=WIDTH, optimizer="sgd", lr=LR, steps=QUICK_STEPS if quick else STEPS,
                   eval_every=QUICK_EVAL_EVERY if quick else EVAL_EVERY)


def diagnoses(run: Run) -> tuple[Diagnosis, Diagnosis]:
    """diagnose() of the run's probe trace at its first recorded step (initialisation: the
    probe records step 0 before the first update) and at its last."""
    trace = Trace(run.layer_records)
    return diagnose(trace, "first"), diagnose(trace, "last")


def steps_to_target(run: Run, target: float = TARGET_ACCURACY) -> int | None:
    """The first evaluated step whose test accuracy is >= target; None when none is."""
    for step, acc in zip(run.history.get("eval_step", []), run.history.get("test_accuracy", [])):
        if acc is not None and acc >= target:
            return int(step)
    return None


def layer_mean(diagnosis: Diagnosis, field: str) -> float:
    """Mean of a LayerReport field (dead_fraction, saturated_fraction) over the hidden layers."""
    values = [getattr(lay, field) for lay in diagnosis.layers if getattr(lay, field) is not None]
    return sum(values) / len(values) if values else math.nan


def profile(diagnosis: Diagnosis) -> list[float]:
    """delta_l / delta_L for l = 1..L: the per-layer gradient profile."""
    return [lay.ratio_to_last for lay in diagnosis.layers]


def measure(run: Run) -> dict[str, Any]:
    """Every number this experiment reports for one run."""
    start, end = diagnoses(run)
    return {
        "ratio_at_init": start.ratio, "ratio_trained": end.ratio,
        "test_accuracy": run.metrics.get("test_accuracy"),
        "steps_to_target": steps_to_target(run),
        "dead_fraction": layer_mean(end, "dead_fraction"), "saturated_fraction": layer_mean(end, "saturated_fraction"),
        "dead_fraction_at_init": layer_mean(start, "dead_fraction"),
        "saturated_fraction_at_init": layer_mean(start, "saturated_fraction"),
        "profile_at_init": profile(start), "profile_trained": profile(end),
        "diverged_at": run.metrics.get("diverged_at"),
    }


def summarise(measures: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed means (finite values only) of one activation at one depth, and the per-seed values."""
    keys = ("ratio_at_init", "ratio_trained", "test_accuracy", "dead_fraction", "saturated_fraction",
            "dead_fraction_at_init", "saturated_fraction_at_init")
    out: dict[str, Any] = {k: mean_sd(m[k] for m in measures)[0] for k in keys}
    reached = [m["steps_to_target"] for m in measures if m["steps_to_target"] is not None]
    out["steps_to_target"] = sum(reached) / len(reached) if reached else None
    out["reached_target"] = len(reached)
    for key in ("profile_at_init", "profile_trained"):
        out[key] = [mean_sd(column)[0] for column in zip(*(m[key] for m in measures))]
    out["diverged"] = sum(m["diverged_at"] is not None for m in measures)
    out["seeds"] = {k: [m[k] for m in measures] for k in (*keys, "steps_to_target")}
    return out


def steps_text(measures: list[dict[str, Any]]) -> str:
    """'120', '95 +- 7', 'not reached', or '120 (2/3 seeds)'."""
    reached = [m["steps_to_target"] for m in measures if m["steps_to_target"] is not None]
    if not reached:
        return "not reached"
    text = fmt_mean_sd(reached)
    return text if len(reached) == len(measures) else f"{text} ({len(reached)}/{len(measures)} seeds)"


def accuracy_text(measures: list[dict[str, Any]]) -> str:
    text = fmt_mean_sd([m["test_accuracy"] for m in measures])
    diverged = sum(m["diverged_at"] is not None for m in measures)
    return f"{text} (diverged {diverged}/{len(measures)})" if diverged else text


def shown_layers(depth: int, n: int = PROFILE_COLUMNS) -> list[int]:
    """Up to n layer numbers 1..depth, evenly spread, first and last included."""
    if depth <= n:
        return list(range(1, depth + 1))
    return sorted({round(1 + i * (depth - 1) / (n - 1)) for i in range(n)})


@experiment("activations", "ten activations with their matching inits in MLPs of depth 2 to 32")
def activations_experiment(ctx: Context) -> None:
    names = QUICK_ACTIVATIONS if ctx.quick else tuple(INITS)
    depths = QUICK_DEPTHS if ctx.quick else DEPTHS
    data, options = ctx.data_spec()
    dataset = load(data, **dict(options))  # loaded once, not once per run
    per_run: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for name in names:
        if not ctx.quick:
            ctx.say(f"[dim]training {name} ({INITS[name]} init) at depths {', '.join(map(str, depths))}...[/dim]")
        per_run[name] = {d: [measure(r) for r in ctx.runs_over_seeds(activation_spec(ctx, name, d), dataset=dataset)]
                         for d in depths}
    summary = {name: {d: summarise(ms) for d, ms in by_depth.items()} for name, by_depth in per_run.items()}
    steps = QUICK_STEPS if ctx.quick else STEPS
    ctx.table(
        f"Activations against depth ({WIDTH} units per layer, SGD lr {LR:g}, {steps} steps, {ctx.data})",
        ["activation", "init", "depth", "delta_1/delta_L at init", "delta_1/delta_L trained", "test accuracy",
         f"steps to {TARGET_ACCURACY:.0%}", "dead (trained)", "saturated (trained)"],
        [[name, INITS[name], d, fmt_mean_sd([m["ratio_at_init"] for m in ms], 2),
          fmt_mean_sd([m["ratio_trained"] for m in ms], 2), accuracy_text(ms), steps_text(ms),
          fmt_mean_sd([m["dead_fraction"] for m in ms], 2), fmt_mean_sd([m["saturated_fraction"] for m in ms], 2)]
         for name, by_depth in per_run.items() for d, ms in by_depth.items()],
        note=("delta_l = ||dL/dz_l|| of hidden layer l (probe trace, first and last recorded step); "
              f"steps to {TARGET_ACCURACY:.0%} test accuracy from the evaluations every "
              f"{QUICK_EVAL_EVERY if ctx.quick else EVAL_EVERY} steps. Dead: f'(z) = 0 on every example of the "
              "probed batch; saturated: |f'(z)| < 5% of max |f'| (for the ReLU family that is the z < 0 side, "
              "about half the units by design). Means over hidden layers." + diverged_note(summary)),
    )
    deepest = max(depths)
    layers = shown_layers(deepest)
    ctx.table(
        f"Per-layer gradient profile delta_l / delta_L at depth {deepest}",
        ["activation", "when", *(f"layer {k}" for k in layers)],
        [[name, when, *(_sci(summary[name][deepest][key][k - 1]) for k in layers)]
         for name in names for when, key in (("init", "profile_at_init"), ("trained", "profile_trained"))],
        note="seed means; layer 1 is next to the input, the last hidden layer is 1 by definition.",
    )
    ctx.result["activations"] = {name: {str(d): s for d, s in by_depth.items()} for name, by_depth in summary.items()}
    ctx.result["inits"] = {name: INITS[name] for name in names}
    ctx.result["depths"] = list(depths)
    ctx.result["steps"] = steps
    ctx.result["target_accuracy"] = TARGET_ACCURACY
    ctx.figure("ratio-vs-depth", "activations.ratio-vs-depth",
               {"depths": list(depths), "at_init": _by_depth(summary, depths, "ratio_at_init"),
                "trained": _by_depth(summary, depths, "ratio_trained")})
    ctx.figure("accuracy-vs-depth", "activations.accuracy-vs-depth",
               {"depths": list(depths), "test_accuracy": _by_depth(summary, depths, "test_accuracy")})
    ctx.figure("profile", "activations.profile",
               {"depth": deepest, "at_init": {name: s[deepest]["profile_at_init"] for name, s in summary.items()},
                "trained": {name: s[deepest]["profile_trained"] for name, s in summary.items()}})
    ctx.say(headline(summary, deepest))


def diverged_note(summary: dict[str, dict[int, dict[str, Any]]]) -> str:
    """' N runs diverged ...' when any did (one learning rate serves every depth), else ''."""
    runs = [f"{name} at depth {d}" for name, by_depth in summary.items() for d, s in by_depth.items() if s["diverged"]]
    if not runs:
        return ""
    return (f" Diverged (NaN/Inf, plain SGD at lr {LR:g} for every depth): {', '.join(runs)}; their 'trained' "
            "numbers are from the last probed step, at or before the divergence.")


def headline(summary: dict[str, dict[int, dict[str, Any]]], depth: int) -> str:
    """One sentence: which activations keep delta_1/delta_L within 10x of 1 at the deepest depth."""
    kept = [n for n, s in summary.items() if 0.1 <= s[depth]["ratio_at_init"] <= 10]
    lost = [n for n in summary if n not in kept]
    return (f"At depth {depth}, delta_1/delta_L stays within 10x of 1 at initialisation for: "
            f"{', '.join(kept) or 'none'}; it does not for: {', '.join(lost) or 'none'}.")


def _sci(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "nan"
    return f"{value:.2g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.1e}"


def _by_depth(summary: dict[str, dict[int, dict[str, Any]]], depths, key: str) -> dict[str, list[float]]:
    """Per activation, summary[key] at each depth (a figure's lines)."""
    return {name: [by_depth[d][key] for d in depths] for name, by_depth in summary.items()}
