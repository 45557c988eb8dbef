"""`residual`: the article's remedy "residual connections", in depth: what a skip does to the backward
signal, when it is not enough, and what holds it.

Two parts, each measured with the Probe's block metrics (`gradvet.probe.blocks`) in snapshots of the
residual stream on a fixed batch (`residual_runs`):

- Residual MLPs (`residual_mlp`): blocks x + s W2 relu(W1 x), He-initialised branches, depths
  L = 4 ... 64 (quick: 4 and 16), unscaled (s = 1), scaled (s = 1/sqrt(L)), zero-initialised W2
  (SkipInit), Fixup (zero W2 and W1 / sqrt(L)) and Pre-LN, on `--data` (digits). At init: the verdict,
  ||dL/dh_1|| / ||dL/dh_L||, the growth per block measured and predicted (1 + s^2 G per block in the
  mean square, G = 1: `residual_theory`), the branch ratio; the stream's move in the first SGD step;
  after SGD training: test accuracy and whether it diverged.
- Transformer stacks (`residual_transformer`): nn.TransformerEncoderLayer Post-LN against Pre-LN,
  depths 6 ... 48 (quick: 6 and 12), reversing token sequences; the stream's gradient profile and
  branch_ratio per block at init and after Adam training, the Spearman correlation of branch_ratio
  with depth.

JSON (OUT/residual.json, `result`): `mlp` and `transformer` map each variant to {"label", "depths":
{L (a string): {number: [one value per seed]}}}; the numbers are `MLP_KEYS` and `TRANSFORMER_KEYS`
(the *_profile_* ones are lists per block, predicted_factors_init the expected factor of blocks
2..L); `theory` holds the branch gain and the predicted growth
per block, `settings` the sizes, steps and learning rates. Figures: the stream's gradient profile per
block (MLP: one panel per depth, each variant and its prediction; transformer: at init and trained),
and branch_ratio per block.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from gradvet.base.formatting import mean_sd_text, short_number
from gradvet.base.stats import finite_mean, geometric_mean
from gradvet.data import load
from gradvet.experiments import residual_mlp as mlp
from gradvet.experiments import residual_transformer as tf
from gradvet.experiments.base import Context, experiment
from gradvet.experiments.residual_theory import growth

MLP_KEYS = ("verdict_init", "ratio_init", "growth_measured", "growth_predicted", "predicted_factors_init",
            "branch_ratio_init",
            "first_step_change", "test_accuracy", "diverged_at", "final_loss", "grad_profile_init",
            "branch_profile_init")
TRANSFORMER_KEYS = tuple(f"{key}_{when}" for when in ("init", "trained")
                         for key in ("verdict", "ratio", "growth", "branch_spearman", "grad_profile", "branch_profile",
                                     "normalisation")) + ("test_accuracy", "diverged_at", "final_loss")


def _over_seeds(runs: list[dict[str, Any]]) -> dict[str, list]:
    """Per-seed dicts -> one list per number."""
    return {key: [r[key] for r in runs] for key in runs[0]}


def _verdicts(values: list[str]) -> str:
    """'exploding', or 'healthy 2/3, exploding 1/3' when the seeds disagree."""
    counts = Counter(values)
    if len(counts) == 1:
        return values[0]
    return ", ".join(f"{v} {n}/{len(values)}" for v, n in counts.most_common())


def _diverged(values: list[int | None]) -> str:
    return ", ".join("-" if v is None else str(v) for v in values)


def profile(per_seed: list[list[float | None]], geometric: bool) -> list[float]:
    """Per block, the seeds' geometric (gradient norms) or arithmetic (ratios) mean; nan where none is finite."""
    mean = (lambda vs: geometric_mean(vs, default=math.nan)) if geometric else finite_mean
    return [mean(column) for column in zip(*per_seed)]


@experiment("residual", "residual connections in depth: branch scaling, zero-init, Pre-LN and Post-LN")
def residual_experiment(ctx: Context) -> None:
    data_name, options = ctx.data_spec()
    data = load(data_name, **dict(options))
    mlp.check_data(data)
    mlp_depths = mlp.QUICK_DEPTHS if ctx.quick else mlp.DEPTHS
    tf_depths = tf.QUICK_DEPTHS if ctx.quick else tf.DEPTHS
    mlp_steps = mlp.QUICK_STEPS if ctx.quick else mlp.STEPS
    tf_steps = tf.QUICK_STEPS if ctx.quick else tf.STEPS
    mlps: dict[str, dict[str, Any]] = {}
    for key, variant in mlp.VARIANTS.items():
        if not ctx.quick:
            ctx.say(f"[dim]residual MLP: {variant.label}...[/dim]")
        mlps[key] = {"label": variant.label, "depths": {
            str(depth): _over_seeds([mlp.run_one(key, depth, data, seed, mlp_steps) for seed in range(ctx.seeds)])
            for depth in mlp_depths}}
    transformers: dict[str, dict[str, Any]] = {}
    for key, label in tf.VARIANTS.items():
        if not ctx.quick:
            ctx.say(f"[dim]transformer: {label}...[/dim]")
        transformers[key] = {"label": label, "depths": {
            str(depth): _over_seeds([tf.run_one(key, depth, seed, tf_steps) for seed in range(ctx.seeds)])
            for depth in tf_depths}}
    ctx.result["residual"] = {
        "mlp": mlps, "transformer": transformers,
        "theory": {"branch_gain": mlp.GAIN,
                   "growth_per_block": {"unscaled": growth(1.0, mlp.GAIN),
                                        "scaled": {str(d): growth(1 / math.sqrt(d), mlp.GAIN) for d in mlp_depths},
                                        "zero_init": 1.0, "fixup": 1.0,
                                        "pre_ln": "sqrt(1 + G (1 - 2/n) / sigma_l^2), sigma_l measured"}},
        "settings": {"data": data.name, "width": mlp.WIDTH, "mlp_depths": list(mlp_depths), "mlp_steps": mlp_steps,
                     "mlp_lr": mlp.LR, "mlp_batch": mlp.BATCH, "probe_batch": mlp.PROBE_BATCH,
                     "transformer_depths": list(tf_depths), "transformer_steps": tf_steps, "transformer_lr": tf.LR,
                     "transformer_batch": tf.BATCH, "d_model": tf.D_MODEL, "heads": tf.HEADS,
                     "feedforward": tf.FEEDFORWARD, "vocab": tf.VOCAB, "length": tf.LENGTH},
    }
    _mlp_table(ctx, mlps, data.name, mlp_steps)
    _transformer_table(ctx, transformers, tf_steps)
    _figures(ctx, mlps, transformers)
    ctx.say(headline(mlps, transformers))


def _mlp_table(ctx: Context, mlps: dict[str, dict[str, Any]], data: str, steps: int) -> None:
    rows = []
    for entry in mlps.values():
        for depth, n in entry["depths"].items():
            rows.append([entry["label"], depth, _verdicts(n["verdict_init"]), mean_sd_text(n["ratio_init"]),
                         mean_sd_text(n["growth_measured"], 4), mean_sd_text(n["growth_predicted"], 4),
                         mean_sd_text(n["branch_ratio_init"]), mean_sd_text(n["first_step_change"]),
                         mean_sd_text(n["test_accuracy"]), _diverged(n["diverged_at"])])
    ctx.table(
        f"Residual MLP blocks x + s W2 relu(W1 x), width {mlp.WIDTH}, {data}: the stream at init, then {steps} "
        f"SGD steps (lr {mlp.LR:g})",
        ["blocks", "L", "verdict at init", "||dL/dh_1||/||dL/dh_L||", "growth/block", "predicted",
         "branch ratio", "step-1 move", "test accuracy", "diverged at"],
        rows,
        note=("Growth/block = (||dL/dh_1||/||dL/dh_L||)^(1/(L-1)), the geometric mean of block_gain over blocks 2..L; "
              "predicted sqrt(1 + s^2 G) with G = 1 for He-initialised branches (W1 ~ N(0, 2/n), W2 ~ N(0, 1/n)), "
              "so sqrt(2) = 1.414 unscaled; Pre-LN: sqrt(1 + G (1 - 2/n) / sigma_l^2) with sigma_l the measured std "
              "of each block's input. Branch ratio: ||h - x||/||x||, mean over the blocks. Step-1 move: "
              "||h_L' - h_L||/||h_L||, the stream after the last block after one SGD step. Snapshots on the first "
              f"{mlp.PROBE_BATCH} training examples."),
    )


def _transformer_table(ctx: Context, transformers: dict[str, dict[str, Any]], steps: int) -> None:
    rows = []
    for entry in transformers.values():
        for depth, n in entry["depths"].items():
            rows.append([entry["label"], depth, _verdicts(n["verdict_init"]), mean_sd_text(n["ratio_init"]),
                         mean_sd_text(n["branch_spearman_init"], 2), _verdicts(n["verdict_trained"]),
                         mean_sd_text(n["ratio_trained"]), mean_sd_text(n["branch_spearman_trained"], 2),
                         mean_sd_text(n["test_accuracy"]), _diverged(n["diverged_at"])])
    ctx.table(
        f"Transformer stacks (nn.TransformerEncoderLayer, d_model {tf.D_MODEL}, {tf.HEADS} heads) reversing "
        f"{tf.LENGTH} tokens of {tf.VOCAB}: at init and after {steps} Adam steps (lr {tf.LR:g}, no warm-up)",
        ["layers", "L", "verdict at init", "||dL/dh_1||/||dL/dh_L|| init", "rho(branch, depth) init",
         "verdict trained", "||dL/dh_1||/||dL/dh_L|| trained", "rho trained", "test accuracy", "diverged at"],
        rows,
        note=("Post-LN: norm_first=False, the stream is normalised after every block; Pre-LN: norm_first=True, "
              "each branch reads a normalised copy and a final LayerNorm precedes the read-out. "
              "rho: Spearman's rank correlation of branch_ratio ||h - x||/||x|| with the block's depth (below 0: "
              f"deeper blocks change the stream less). Accuracy per token; chance {1 / tf.VOCAB:.2f}. Snapshots on "
              f"a fixed batch of {tf.PROBE_BATCH} sequences."),
    )


def _figures(ctx: Context, mlps: dict[str, dict[str, Any]], transformers: dict[str, dict[str, Any]]) -> None:
    ctx.figure("mlp-profile", "residual.mlp-profile", {
        "variants": {e["label"]: {d: profile(n["grad_profile_init"], geometric=True) for d, n in e["depths"].items()}
                     for e in mlps.values()},
        "predicted": {e["label"]: {d: profile(n["predicted_factors_init"], geometric=True)
                                   for d, n in e["depths"].items()} for e in mlps.values()},
    })
    grads = {e["label"]: {d: {when: profile(n[f"grad_profile_{when}"], geometric=True) for when in ("init", "trained")}
                          for d, n in e["depths"].items()} for e in transformers.values()}
    ctx.figure("transformer-profile", "residual.transformer-profile", {"variants": grads})
    deepest = max(next(iter(mlps.values()))["depths"], key=int)
    ctx.figure("branch-ratio", "residual.branch-ratio", {
        "transformer": {e["label"]: {d: {when: profile(n[f"branch_profile_{when}"], geometric=False)
                                         for when in ("init", "trained")} for d, n in e["depths"].items()}
                        for e in transformers.values()},
        "mlp": {e["label"]: profile(e["depths"][deepest]["branch_profile_init"], geometric=False)
                for e in mlps.values()},
        "mlp_depth": int(deepest),
    })


def headline(mlps: dict[str, dict[str, Any]], transformers: dict[str, dict[str, Any]]) -> str:
    """The deepest MLP's ratio per variant, and the deepest transformers' before and after training."""
    deepest = max(mlps["unscaled"]["depths"], key=int)
    parts = [f"{mlps[k]['label']}: {short_number(finite_mean(mlps[k]['depths'][deepest]['ratio_init']))}"
             for k in mlps]
    unscaled = mlps["unscaled"]["depths"][deepest]
    line = (f"Residual MLP, L = {deepest}, ||dL/dh_1||/||dL/dh_L|| at init: {'; '.join(parts)} (unscaled predicted "
            f"{short_number(growth(1.0, mlp.GAIN) ** (int(deepest) - 1))}); the unscaled net "
            f"diverged at step {_diverged(unscaled['diverged_at'])}.")
    top = max(transformers["post_ln"]["depths"], key=int)
    for entry in transformers.values():
        n = entry["depths"][top]
        line += (f" {entry['label']}, {top} layers: first/last {short_number(finite_mean(n['ratio_init']))} at init, "
                 f"{short_number(finite_mean(n['ratio_trained']))} trained, accuracy {mean_sd_text(n['test_accuracy'])}.")
    return line
