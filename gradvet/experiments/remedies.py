"""`remedies`: a deep sigmoid net that fails, and the article's remedies, alone and combined.

The failing net (`FAILING`): 10 hidden layers of 64 sigmoid units, Xavier
init (W ~ U[-a, a], a = sqrt(6 / (n_in + n_out)), Glorot & Bengio 2010), plain
SGD. Backward, each layer multiplies the signal by sigma'(z) <= 1/4 and by
W^T, whose gain is about sqrt(n Var(W)) = 1 for square Xavier layers, so
delta_1 / delta_L is about (1/4)^9 ~ 4e-6 on digits (measured: about 2e-6): the
first layer hardly learns.

Then the same net with one change each (`REMEDIES`): relu with He init, tanh,
better inits (he, orthogonal, lsuv; xavier is the baseline), batch norm,
residual connections, greedy layer-wise autoencoder pre-training followed by
fine-tuning (RunSpec.pretrain steps per layer), and a combination (relu + he +
batch norm + residual). For each, one training run (per seed) with the same
optimiser and steps, and from it:

- delta_1 / delta_L at initialisation and after training, delta_l = ||dL/dz_l||
  the backward signal at hidden layer l's linear output (gradvet.diagnose on
  the run's probe trace, first and last recorded step). For pre-training the
  first recorded step is the start of fine-tuning, after pre-training;
- the first layer's learning speed: Nielsen's ||dL/db_1||, the bias gradient
  norm of hidden.0.linear, at initialisation and averaged over the recorded
  steps. Batch norm subtracts the batch mean of W x + b, so that bias gets no
  gradient at all (dL/db = 0 exactly); with batch norm the learning speed is
  read from batch norm's shift beta (hidden.0.norm), the bias that replaces it;
- the first layer's relative update per step ||dW_1|| / ||W_1|| (mean over the
  recorded steps), comparable with and without batch norm;
- test accuracy and wall time (pre-training included).
"""

from __future__ import annotations

import math
from typing import Any

from gradvet.base.formatting import mean_sd_text, short_number
from gradvet.base.stats import mean_sd
from gradvet.data import load
from gradvet.experiments.base import Context, experiment
from gradvet.probe import Diagnosis, Trace, diagnose
from gradvet.spec import RunSpec
from gradvet.train.result import Run

FAILING: dict[str, Any] = {"activation": "sigmoid", "init": "xavier", "depth": 10, "width": 64}
LR = 0.1
STEPS, QUICK_STEPS = 1500, 100
EVAL_EVERY, QUICK_EVAL_EVERY = 50, 25
PRETRAIN, QUICK_PRETRAIN = 300, 30  # autoencoder steps per hidden layer
FIRST = "hidden.0"

# (key, label, changes to the failing net); the first entry is the failing net itself.
REMEDIES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sigmoid", "none (the failing net)", {}),
    ("relu", "relu + he init", {"activation": "relu", "init": "he"}),
    ("tanh", "tanh", {"activation": "tanh"}),
    ("he", "he init", {"init": "he"}),
    ("orthogonal", "orthogonal init", {"init": "orthogonal"}),
    ("lsuv", "lsuv init", {"init": "lsuv"}),
    ("batchnorm", "batch norm", {"norm": "batch"}),
    ("residual", "residual connections", {"residual": True}),
    ("pretrain", "pre-training + fine-tuning", {"pretrain": None}),  # steps per layer set by quick/full
    ("combined", "relu + he + bn + residual", {"activation": "relu", "init": "he", "norm": "batch",
                                                      "residual": True}),
)


def failing_spec(ctx: Context) -> RunSpec:
    """The failing deep sigmoid net, trained with plain SGD (no momentum or Adam: both rescale
    gradients and would be remedies of their own)."""
    data, options = ctx.data_spec()
    return RunSpec(data=data, data_options=options, optimizer="sgd", lr=LR, **FAILING,
                   steps=QUICK_STEPS if ctx.quick else STEPS, eval_every=QUICK_EVAL_EVERY if ctx.quick else EVAL_EVERY)


def remedy_spec(ctx: Context, changes: dict[str, Any]) -> RunSpec:
    """The failing net with `changes` applied (pretrain=None: this mode's pre-training steps)."""
    changes = dict(changes)
    if "pretrain" in changes and changes["pretrain"] is None:
        changes["pretrain"] = QUICK_PRETRAIN if ctx.quick else PRETRAIN
    return failing_spec(ctx).replace(**changes)


def speed_layer(spec: RunSpec) -> str:
    """Where the first layer's bias lives: the linear map, or batch norm's shift when there is one."""
    return f"{FIRST}.norm" if spec.norm == "batch" else f"{FIRST}.linear"


def layer_ratio(diagnosis: Diagnosis) -> float:
    """delta_1/delta_L over the hidden layers for every remedy alike, the residual net included (whose
    own verdict reads the residual stream between its blocks, `Diagnosis.basis`): the table compares
    one quantity across the remedies."""
    if diagnosis.basis == "blocks" and diagnosis.layers:
        return diagnosis.layers[0].ratio_to_last
    return diagnosis.ratio


def measure(run: Run) -> dict[str, Any]:
    """Ratios at init and after training, first-layer speed and update ratio, accuracy, wall time."""
    trace = Trace(run.layer_records)
    start, end = diagnose(trace, "first"), diagnose(trace, "last")
    layer = speed_layer(run.spec)
    _, speeds = trace.series(layer, "bias_grad_norm")
    _, updates = trace.series(f"{FIRST}.linear", "update_ratio")
    return {
        "ratio_at_init": layer_ratio(start), "ratio_trained": layer_ratio(end),
        "first_layer_speed_at_init": speeds[0] if speeds else math.nan,
        "first_layer_speed_mean": sum(speeds) / len(speeds) if speeds else math.nan,
        "first_layer_update_ratio": sum(updates) / len(updates) if updates else math.nan,
        "test_accuracy": run.metrics.get("test_accuracy"), "wall_time": run.metrics.get("wall_time"),
        "diverged_at": run.metrics.get("diverged_at"),
    }


def summarise(measures: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed means (finite values only) and the per-seed values."""
    keys = [k for k in measures[0] if k != "diverged_at"]
    out: dict[str, Any] = {k: mean_sd(m[k] for m in measures)[0] for k in keys}
    out["diverged"] = sum(m["diverged_at"] is not None for m in measures)
    out["seeds"] = {k: [m[k] for m in measures] for k in keys}
    return out


@experiment("remedies", "a failing deep sigmoid net and each remedy of the article, alone and combined")
def remedies_experiment(ctx: Context) -> None:
    base = failing_spec(ctx)
    dataset = load(base.data, **dict(base.data_options))  # loaded once, not once per run
    _warm_up()
    per_remedy: dict[str, list[dict[str, Any]]] = {}
    reconstruction: list[dict[str, float]] = []
    specs: dict[str, RunSpec] = {}
    curves: dict[str, tuple[list[int], list[float]]] = {}  # first-layer speed during training, seed 0
    for key, label, changes in REMEDIES:
        if not ctx.quick:
            ctx.say(f"[dim]training: {label}...[/dim]")
        specs[key] = remedy_spec(ctx, changes)
        runs = ctx.runs_over_seeds(specs[key], dataset=dataset)
        per_remedy[key] = [measure(r) for r in runs]
        curves[key] = Trace(runs[0].layer_records).series(speed_layer(specs[key]), "bias_grad_norm")
        if runs[0].pretrain:
            reconstruction = runs[0].pretrain  # per layer: autoencoder loss before and after, seed 0
    summary = {key: summarise(ms) for key, ms in per_remedy.items()}
    baseline = summary["sigmoid"]["ratio_at_init"]
    labels = {key: label for key, label, _ in REMEDIES}
    ctx.table(
        f"Remedies for a deep sigmoid net ({FAILING['depth']} hidden layers of {FAILING['width']}, SGD lr {LR:g}, "
        f"{base.steps} steps, {ctx.data})",
        ["remedy", "d1/dL at init", "x baseline", "d1/dL trained", "speed at init", "speed (mean)",
         "||dW1||/||W1||", "test accuracy", "wall time (s)"],
        [[labels[key], mean_sd_text(_col(ms, "ratio_at_init"), 2), _times(summary[key]["ratio_at_init"], baseline),
          mean_sd_text(_col(ms, "ratio_trained"), 2), mean_sd_text(_col(ms, "first_layer_speed_at_init"), 2),
          mean_sd_text(_col(ms, "first_layer_speed_mean"), 2), mean_sd_text(_col(ms, "first_layer_update_ratio"), 2),
          _accuracy(ms), mean_sd_text(_col(ms, "wall_time"), 2)]
         for key, ms in per_remedy.items()],
        note=("Each remedy changes only what it names: the rest stays sigmoid + xavier. d1/dL = delta_1/delta_L, "
              "delta_l = ||dL/dz_l|| at hidden layer l's linear output (probe trace; 'at init' is the first "
              "recorded step, for pre-training the start of fine-tuning). Speed: the first layer's learning "
              f"speed ||dL/db_1|| ({FIRST}.linear's bias; batch norm's shift {FIRST}.norm where batch norm is on, "
              "since it cancels the linear bias). ||dW1||/||W1||: the first layer's relative change per step. "
              "Means over the recorded steps."),
    )
    ctx.result["remedies"] = {key: {"label": labels[key], **summary[key], "spec": specs[key].to_dict()}
                              for key in summary}
    ctx.result["failing_net"] = dict(FAILING)
    ctx.result["steps"] = base.steps
    ctx.result["pretrain_steps_per_layer"] = specs["pretrain"].pretrain
    ctx.result["pretrain_reconstruction"] = reconstruction
    ctx.figure("ratio", "remedies.ratio",
               {"labels": [labels[key] for key in summary],
                "at_init": [summary[key]["ratio_at_init"] for key in summary],
                "trained": [summary[key]["ratio_trained"] for key in summary]})
    ctx.figure("first-layer-speed", "remedies.first-layer-speed",
               {"curves": {labels[key]: {"step": list(steps), "speed": list(values)}
                           for key, (steps, values) in curves.items()}})
    ctx.say(headline(summary, labels))


def _warm_up() -> None:
    """Pay PyTorch's one-time lazy imports (the optimiser's first construction loads torch._dynamo,
    a second or more) before the first timed run, so the failing net's wall time is not inflated."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)


def _col(measures: list[dict[str, Any]], key: str) -> list[float]:
    return [m[key] for m in measures]


def _times(value: float, baseline: float) -> str:
    """value / baseline as '3.1e+05x' (`short_number`), 'nan' without a finite positive baseline."""
    if not (math.isfinite(value) and math.isfinite(baseline) and baseline > 0):
        return "nan"
    return f"{short_number(value / baseline)}x"


def _accuracy(measures: list[dict[str, Any]]) -> str:
    text = mean_sd_text(_col(measures, "test_accuracy"))
    diverged = sum(m["diverged_at"] is not None for m in measures)
    return f"{text} (diverged {diverged}/{len(measures)})" if diverged else text


def headline(summary: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """Which remedies lift delta_1/delta_L at initialisation by more than 10x, and which do not."""
    base = summary["sigmoid"]["ratio_at_init"]
    lifted = [k for k in summary if k != "sigmoid" and summary[k]["ratio_at_init"] > 10 * base]
    flat = [k for k in summary if k != "sigmoid" and k not in lifted]
    return (f"The failing sigmoid net starts at delta_1/delta_L = {base:.1e}. Raised more than 10x at "
            f"initialisation by: {', '.join(lifted) or 'none'}; not by: {', '.join(flat) or 'none'}.")
