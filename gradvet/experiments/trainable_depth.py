"""`trainable-depth`: how deep a tanh net can be and still train, against the mean-field depth
scale xi_c (Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, "Deep Information Propagation").

Mean-field theory (`gradvet.theory`): in a fully connected net with W ~ N(0, sw2/n_in) and
b ~ N(0, sb2), the correlation between the signals of two inputs approaches its fixed point
like exp(-l / xi_c). In the ordered phase (chi1 < 1) all inputs end up alike, in the chaotic
phase (chi1 > 1) unrelated; either way, after a few xi_c layers the last layer has little
left to tell the inputs apart, and the backward signal vanishes or explodes at the same
rate. xi_c diverges at the edge of chaos (chi1 = 1). Schoenholz et al. trained such nets
on MNIST and CIFAR-10 over a grid of sw2 and depth and found them trainable roughly up
to a depth of 6 xi_c, deepest at the edge of chaos (`PUBLISHED`).

Setup here (one run per grid point and seed, all through the sweep engine):

- tanh MLPs of WIDTH units per hidden layer, init "gaussian:sw2=S,sb2=0.05" (every layer,
  the read-out included: W ~ N(0, S/n_in), b ~ N(0, 0.05)), for S in SW2 (1.0 to 4.0;
  the edge of chaos is at 1.761) and hidden depths in DEPTHS (5 to 100);
- plain SGD (no momentum), learning rate LR, batch 64, STEPS steps, on `--data`
  (digits unless given; mnist1d works too), test accuracy at the end, averaged over
  --seeds. A smaller lr trains the shallow nets more slowly but keeps the deepest nets
  near the edge of chaos stable (at lr 0.01 a depth-100 net at sw2 = 1.76 stays near
  chance after 1,000 steps; at 0.003 it reaches 0.83 on digits);
- --quick: QUICK_SW2 x QUICK_DEPTHS, QUICK_WIDTH units, QUICK_STEPS steps at QUICK_LR.

A run that diverges (its loss or gradient turns NaN or infinite) counts as chance
accuracy: the rate of the most common class in the test set, what a net that cannot
tell its inputs apart scores at best.

Runs are trained by `gradvet.sweep.run_sweep` with `workers` processes (ctx.options,
default WORKERS) into the experiment's store, without a probe (`train_run`: nothing
per layer is recorded, which halves the time of a 100-layer run), and read back with
`ctx.run`, so a rerun is instant and an interrupted one resumes.

Read-outs: a heatmap of test accuracy over sw2 and depth with 6 xi_c(sw2) and the edge
of chaos drawn on it; accuracy against depth / (6 xi_c); per sw2 the trainable depth
(the deepest grid depth whose accuracy is above chance + half the way from chance to
the best accuracy of the grid) beside 6 xi_c; and the agreement, the share of grid
points on the side of 6 xi_c their accuracy says (trainable: depth <= 6 xi_c).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradvet.experiments.base import Context, experiment, fmt_mean_sd
from gradvet.spec import RunSpec

ACTIVATION = "tanh"
SB2 = 0.05
SW2 = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0)
DEPTHS = (5, 10, 20, 30, 40, 50, 60, 80, 100)
WIDTH = 64
STEPS = 1000
LR = 0.003
QUICK_SW2 = (1.0, 1.75, 4.0)
QUICK_DEPTHS = (5, 20, 50)
QUICK_WIDTH = 32
QUICK_STEPS = 300
QUICK_LR = 0.01
BATCH = 64
WORKERS = 2
HALF_WAY = 0.5  # trainable: accuracy above chance + HALF_WAY * (best - chance)

# From ../shared/reference/published.json, key "schoenholz_2017" (copied, not read at run time).
PUBLISHED = {
    "source": "S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein, Deep Information Propagation, ICLR 2017",
    "finding": "fully connected nets are trainable roughly up to depth 6 xi_c (MNIST, CIFAR-10)",
}
PUBLISHED_FACTOR = 6.0  # the multiple of xi_c in the finding

_DATASETS: dict[tuple, Any] = {}  # per process: data loaded once for every run of a sweep


def train_run(spec: RunSpec):
    """gradvet.train.run without a probe, with the dataset loaded once per process: the sweep's
    run function (the workers import it by name)."""
    from gradvet.data import load
    from gradvet.train import run

    key = (spec.data, spec.data_options)
    if key not in _DATASETS:
        _DATASETS[key] = load(spec.data, **dict(spec.data_options))
    return run(spec, probe=None, dataset=_DATASETS[key])


def grid(ctx: Context) -> dict[str, Any]:
    """The grid and training settings of this mode (full or --quick)."""
    if ctx.quick:
        return {"sw2": list(QUICK_SW2), "depths": list(QUICK_DEPTHS), "width": QUICK_WIDTH, "steps": QUICK_STEPS,
                "lr": QUICK_LR}
    return {"sw2": list(SW2), "depths": list(DEPTHS), "width": WIDTH, "steps": STEPS, "lr": LR}


def net_spec(ctx: Context, sw2: float, depth: int, seed: int = 0) -> RunSpec:
    """The tanh net at (sw2, depth) for this mode, trained with plain SGD."""
    from gradvet.models.init import gaussian

    g = grid(ctx)
    data, options = ctx.data_spec()
    return RunSpec(data=data, data_options=options, activation=ACTIVATION, init=gaussian(sw2, SB2), depth=depth,
                   width=g["width"], optimizer="sgd", lr=g["lr"], batch_size=BATCH, steps=g["steps"], eval_every=0,
                   seed=seed)


def theory_numbers(sw2_values: list[float]) -> dict[str, list[float]]:
    """chi1, xi_c and 6 xi_c at each sw2 (tanh, sb2 = SB2)."""
    from gradvet.theory import depth_scales

    scales = [depth_scales(ACTIVATION, s, SB2) for s in sw2_values]
    return {"chi1": [d.chi1 for d in scales], "xi_c": [d.xi_c for d in scales],
            "six_xi_c": [PUBLISHED_FACTOR * d.xi_c for d in scales], "q_star": [d.q_star for d in scales]}


def chance_accuracy(dataset) -> float:
    """The test rate of the most common test class: the best a net that ignores its input can do."""
    y = np.asarray(dataset.y_test)
    return float(np.bincount(y).max() / len(y))


def accuracy(run, chance: float) -> float:
    """A run's test accuracy; chance for a diverged run (or one without a finite accuracy)."""
    acc = run.metrics.get("test_accuracy")
    if run.status == "diverged" or acc is None or not math.isfinite(acc):
        return chance
    return float(acc)


def trainable_depths(acc: np.ndarray, depths: list[int], threshold: float) -> list[int | None]:
    """Per sw2 (column of acc[depth, sw2]): the deepest depth whose accuracy exceeds threshold."""
    out: list[int | None] = []
    for j in range(acc.shape[1]):
        above = [depths[i] for i in range(acc.shape[0]) if acc[i, j] > threshold]
        out.append(max(above) if above else None)
    return out


def agreement(acc: np.ndarray, depths: list[int], six_xi_c: list[float], threshold: float) -> float:
    """The share of grid points where 'accuracy above threshold' equals 'depth <= 6 xi_c'."""
    hits = [(acc[i, j] > threshold) == (d <= six_xi_c[j]) for i, d in enumerate(depths) for j in range(acc.shape[1])]
    return sum(hits) / len(hits)


@experiment("trainable-depth", "how deep a tanh net trains over sw2 and depth, against 6 xi_c (Schoenholz et al. 2017)")
def trainable_depth(ctx: Context) -> None:
    from gradvet.data import load
    from gradvet.sweep.runner import run_sweep
    from gradvet.theory import critical_sw2

    g = grid(ctx)
    sw2s, depths = g["sw2"], g["depths"]
    data, options = ctx.data_spec()
    dataset = load(data, **dict(options))
    chance = chance_accuracy(dataset)
    workers = int(ctx.options.get("workers", WORKERS))
    specs = {(s, d, seed): net_spec(ctx, s, d, seed) for s in sw2s for d in depths for seed in range(ctx.seeds)}
    ctx.say(f"{dataset.describe()}; tanh, width {g['width']}, sb2 {SB2:g}, {len(sw2s)} sw2 x {len(depths)} depths "
            f"x {ctx.seeds} seed(s), SGD lr {g['lr']:g}, {g['steps']} steps, {workers} worker(s)")

    # Train what the store lacks (deepest first, so the longest runs do not finish last), then read back.
    order = sorted(specs.values(), key=lambda spec: -spec.depth)
    reused = ctx.reused
    summary = run_sweep(order, ctx.store_path, workers=workers, run_fn=train_run,
                        progress=ctx.view is not None and ctx.view.shows_progress)
    ctx.say(f"sweep: {summary.line()}")
    runs = {key: ctx.run(spec, dataset=dataset) for key, spec in specs.items()}
    by_sweep = min(summary.done + summary.diverged, ctx.reused - reused)  # ctx.run read these back from the store
    ctx.reused -= by_sweep
    ctx.trained += by_sweep

    per_seed = np.array([[[accuracy(runs[(s, d, seed)], chance) for seed in range(ctx.seeds)] for s in sw2s]
                         for d in depths])  # [depth, sw2, seed]
    acc = per_seed.mean(axis=2)
    diverged = np.array([[sum(runs[(s, d, seed)].status == "diverged" for seed in range(ctx.seeds)) for s in sw2s]
                         for d in depths])
    best = float(acc.max())
    threshold = chance + HALF_WAY * (best - chance)
    theory = theory_numbers(sw2s)
    edge = critical_sw2(ACTIVATION, SB2)
    deepest = trainable_depths(acc, depths, threshold)
    agree = agreement(acc, depths, theory["six_xi_c"], threshold)

    _accuracy_table(ctx, sw2s, depths, per_seed, diverged, chance, g)
    _theory_table(ctx, sw2s, depths, theory, deepest, threshold, edge)
    _figures(ctx, g, acc, theory["six_xi_c"], edge, chance, threshold)

    ctx.result.update({
        "setup": {"activation": ACTIVATION, "sb2": SB2, "width": g["width"], "optimizer": "sgd", "lr": g["lr"],
                  "batch_size": BATCH, "steps": g["steps"], "data": dataset.name, "workers": workers,
                  "diverged_counts_as": "chance"},
        "sw2": sw2s, "depths": depths,
        "accuracy": acc.tolist(),  # [depth][sw2], mean over seeds
        "accuracy_by_seed": per_seed.tolist(),  # [depth][sw2][seed]
        "diverged": diverged.tolist(),  # [depth][sw2]: seeds that diverged
        "chance": chance, "best": best, "threshold": threshold,
        "chi1": theory["chi1"], "xi_c": theory["xi_c"], "six_xi_c": theory["six_xi_c"], "q_star": theory["q_star"],
        "critical_sw2": edge,
        "trainable_depth": deepest,
        "agreement": agree,
        "published": dict(PUBLISHED),
    })
    ctx.say(headline(sw2s, depths, deepest, theory["six_xi_c"], agree, threshold))
    ctx.say(f"Published: {PUBLISHED['finding']} ({PUBLISHED['source']}).")


def _cell(values: list[float], diverged: int) -> str:
    text = fmt_mean_sd(values, 2) if len(values) > 1 else f"{values[0]:.2f}"
    return f"{text} ({diverged} div)" if diverged else text


def _accuracy_table(ctx: Context, sw2s, depths, per_seed, diverged, chance, g) -> None:
    rows = [[d, *[_cell(list(per_seed[i, j]), int(diverged[i, j])) for j in range(len(sw2s))]]
            for i, d in enumerate(depths)]
    note = (f"Test accuracy of tanh MLPs (width {g['width']}, W ~ N(0, sw2/n_in), b ~ N(0, {SB2:g})) after "
            f"{g['steps']} plain SGD steps at lr {g['lr']:g}, batch {BATCH}. A diverged run (NaN/Inf) counts as "
            f"chance = {chance:.3f} (the most common test class); '(k div)': k seeds diverged.")
    if ctx.seeds > 1:
        note += f" Mean +- sd over {ctx.seeds} seeds."
    ctx.table(f"Test accuracy by depth (rows) and sw2 (columns), {ctx.data}",
              ["depth", *[f"sw2={s:g}" for s in sw2s]], rows, note)


def _theory_table(ctx: Context, sw2s, depths, theory, deepest, threshold, edge) -> None:
    from gradvet.theory import phase as mean_field_phase

    rows = []
    for j, s in enumerate(sw2s):
        six = theory["six_xi_c"][j]
        phase = mean_field_phase(theory["chi1"][j])
        found = deepest[j]
        shown = "none" if found is None else (f">= {found}" if found == max(depths) else str(found))
        ratio = f"{found / six:.2f}" if found is not None and math.isfinite(six) and six > 0 else ""
        rows.append([f"{s:g}", phase, f"{theory['chi1'][j]:.4f}", f"{theory['xi_c'][j]:.3g}", f"{six:.3g}", shown,
                     ratio])
    edge_text = f"{edge:.4g}" if edge is not None else "none"
    ctx.table(f"Mean-field depth scale and measured trainable depth (tanh, sb2 = {SB2:g}; edge of chaos sw2 = "
              f"{edge_text})", ["sw2", "phase", "chi1", "xi_c", "6 xi_c", "trainable depth", "depth / 6 xi_c"], rows,
              f"Trainable depth: the deepest grid depth with accuracy above {threshold:.3f} (chance + half the way to "
              f"the best accuracy); '>= {max(depths)}': the deepest depth tried. xi_c = -1/log chi_c from "
              f"gradvet.theory.depth_scales. Published: {PUBLISHED['finding']}.")


def headline(sw2s, depths, deepest, six_xi_c, agree, threshold) -> str:
    """Where the trainable region sits against 6 xi_c, in one paragraph."""
    parts = []
    for s, found, six in zip(sw2s, deepest, six_xi_c):
        shown = "none" if found is None else (f">={found}" if found == max(depths) else str(found))
        parts.append(f"sw2 {s:g}: {shown} (6 xi_c {six:.0f})")
    return (f"Trainable depth (accuracy > {threshold:.2f}) per sw2, against 6 xi_c: " + "; ".join(parts) +
            f". {agree:.0%} of the grid points fall on the side of 6 xi_c that their accuracy says.")


def _edges(values: list[float], floor: float = -math.inf) -> np.ndarray:
    """Cell edges around grid values: midpoints between neighbours, half a step beyond the ends
    (the first edge no lower than `floor`)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        edges = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[:-1] + v[1:]) / 2
        edges = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    edges[0] = max(edges[0], floor)
    return edges


def _figures(ctx: Context, g: dict[str, Any], acc: np.ndarray, six_xi_c: list[float], edge: float | None,
             chance: float, threshold: float) -> None:
    """The heatmap (accuracy over sw2 and depth, with 6 xi_c(sw2) on a fine grid and the edge of chaos) and
    the collapse (accuracy against depth / 6 xi_c)."""
    sw2s, depths = g["sw2"], g["depths"]
    x_edges, y_edges = _edges(sw2s, floor=0.0), _edges(depths, floor=0.0)
    fine = np.linspace(max(x_edges[0], 0.01), x_edges[-1], 241)  # theory needs sw2 > 0
    ctx.figure("heatmap", "trainable-depth.heatmap",
               {"sw2": sw2s, "depths": depths, "accuracy": acc.tolist(), "six_xi_c": six_xi_c, "edge": edge,
                "chance": chance, "x_edges": x_edges.tolist(), "y_edges": y_edges.tolist(),
                "theory_sw2": fine.tolist(), "theory_six_xi_c": theory_numbers(fine.tolist())["six_xi_c"],
                "sb2": SB2, "width": g["width"], "lr": g["lr"], "steps": g["steps"], "data": ctx.data})
    ctx.figure("collapse", "trainable-depth.collapse",
               {"sw2": sw2s, "depths": depths, "accuracy": acc.tolist(), "six_xi_c": six_xi_c, "chance": chance,
                "threshold": threshold})


__all__ = ["DEPTHS", "PUBLISHED", "SB2", "SW2", "WIDTH", "accuracy", "agreement", "chance_accuracy", "net_spec",
           "theory_numbers", "train_run", "trainable_depth", "trainable_depths"]
