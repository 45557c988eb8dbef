"""`gradvet demo`: the article's story, measured on the embedded digits data in under a minute.

1. A deep sigmoid net (10 hidden layers of 64, Xavier init) at initialisation:
   the backward signal per layer, falling by orders of magnitude.
2. Why: the chain rule's two factors per layer, activation f'(z) and weight W^T.
3. The same net with tanh, relu, leaky_relu and elu (each with its matching init).
4. A short training of each: the first layer's learning speed and the test accuracy.
5. Exploding gradients (N(0, 1) weights) and gradient clipping.
6. The recommendation, in the article's words, with the numbers above.
Figures, a summary and demo.json go to ./gradvet-report/; runs are kept in its runs.db, so
a second demo reuses them. The story is plain data (tables, figure data, sentences): the
caller's view (`experiments.view`; on the command line the report layer's
`ExperimentView`) prints it and draws the figures, and `gradvet demo` adds the HTML report
(index.html: every table and figure, the runs, the activation explorer) from demo.json and
`Context.records`.
"""

from __future__ import annotations

import math
from pathlib import Path

from torch import nn

from gradvet.activations import activation
from gradvet.activations.matching_init import matching_init
from gradvet.base.formatting import cell, short_number
from gradvet.base.stats import geometric_mean
from gradvet.base.validation import output_folder
from gradvet.checkup import full_diagnosis
from gradvet.data import load
from gradvet.experiments.base import Context
from gradvet.experiments.view import View
from gradvet.models import mlp
from gradvet.probe import Probe, Trace
from gradvet.spec import RunSpec

DEPTH, WIDTH, STEPS = 10, 64, 300
CONTENDERS = tuple((name, matching_init(activation(name))) for name in ("sigmoid", "tanh", "relu", "leaky_relu", "elu"))


def _at_init(activation: str, init: str, data):
    """Probe one backward pass of a fresh net (seed 0) on 256 training examples; its diagnosis."""
    model = mlp(data.n_features, data.n_classes, DEPTH, WIDTH, activation, init, seed=0)
    batch = data.x_train[:256]
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(batch), data.y_train[:256]).backward()
        probe.step()
    return full_diagnosis(probe, model, batch)


def _first_layer_speed(run) -> tuple[list[int], list[float]]:
    trace = Trace(run.layer_records)
    return trace.series("hidden.0.linear", "bias_grad_norm")


def run_demo(out: str | Path = "gradvet-report", view: View | None = None) -> Context:
    """Tell the story to `view` (None: silently); returns the Context holding tables, figures, numbers, and
    in `records` the sigmoid net's diagnosis for the report."""
    ctx = Context(name="demo", out=output_folder("out", out), view=view)
    data = load("digits")
    say = ctx.say

    # 1-2. the vanishing gradient and its cause
    say(f"[bold]1. A deep sigmoid net at initialisation[/bold] ({DEPTH} hidden layers of {WIDTH}, Xavier init, "
        f"digits): the backward signal ||dL/dz|| per layer.")
    sig = _at_init("sigmoid", "xavier", data)
    ctx.table("sigmoid net at initialisation: the gradient falls layer by layer",
              ["layer", "||dL/dz||", "ratio to last", "activation factor f'", "weight factor W^T"],
              [[lay.name, lay.delta, lay.ratio_to_last, lay.activation_gain, lay.weight_gain] for lay in sig.layers],
              note="factor = ||dL/d input|| / ||dL/d output|| through that module, measured by gradvet.Probe")
    say(f"[bold]2. Why:[/bold] {sig.cause}")
    ctx.result["sigmoid_at_init"] = {"ratio": sig.ratio, "activation_factor": sig.activation_factor,
                                     "weight_factor": sig.weight_factor, "verdict": sig.verdict}

    # 3. other activations, same net
    say("\n[bold]3. The same net with other activations[/bold] (each with its matching init):")
    at_init = {a: _at_init(a, i, data) for a, i in CONTENDERS}
    ctx.table("delta_1 / delta_L at initialisation",
              ["activation", "init", "delta_1/delta_L", "mean activation factor", "verdict"],
              [[a, i, at_init[a].ratio, _mean_activation_factor(at_init[a]), at_init[a].verdict] for a, i in CONTENDERS])

    # 4. a short training of each
    say(f"\n[bold]4. {STEPS} SGD steps of each[/bold]: the first layer's learning speed (its bias gradient) and accuracy.")
    runs = {a: ctx.run(RunSpec(data="digits", activation=a, init=i, depth=DEPTH, width=WIDTH, steps=STEPS, lr=0.1,
                               batch_size=64, eval_every=100)) for a, i in CONTENDERS}
    rows = []
    for a, _ in CONTENDERS:
        steps, speed = _first_layer_speed(runs[a])
        rows.append([a, speed[0] if speed else math.nan, _median(speed), runs[a].metrics["test_accuracy"]])
    ctx.table("short training", ["activation", "first-layer speed at step 0", "median over training", "test accuracy"],
              rows, note="speed = ||dL/db|| of hidden.0.linear (Nielsen's speed of learning)")
    ctx.result["training"] = {r[0]: {"speed_at_init": r[1], "median_speed": r[2], "test_accuracy": r[3]} for r in rows}
    _speed_figure(ctx, runs)

    # 5. exploding gradients and clipping
    say("\n[bold]5. Exploding gradients[/bold]: N(0, 1) weights (the article's start) in a 6-layer ReLU net, lr 0.1.")
    base = RunSpec(data="digits", activation="relu", init="normal", depth=6, width=WIDTH, steps=200, lr=0.1,
                   eval_every=0)
    wild, clipped = ctx.run(base), ctx.run(base.replace(clip=1.0))
    ctx.table("exploding, and gradient clipping at 1.0",
              ["run", "status", "diverged at step", "max grad norm", "test accuracy"],
              [[name, r.status, r.metrics["diverged_at"] or "-", _finite_max(r.history["grad_norm"]),
                r.metrics["test_accuracy"]] for name, r in (("N(0,1) init", wild), ("same, clip 1.0", clipped))],
              note="grad norm recorded before clipping; clipping bounds the step actually taken")
    ctx.result["exploding"] = {"unclipped": {"status": wild.status, "diverged_at": wild.metrics["diverged_at"],
                                             "max_grad_norm": _finite_max(wild.history["grad_norm"])},
                               "clipped": {"status": clipped.status, "test_accuracy": clipped.metrics["test_accuracy"]}}
    _explode_figure(ctx, wild, clipped)

    # 6. the recommendation
    acc = {a: runs[a].metrics["test_accuracy"] for a, _ in CONTENDERS}
    lines = [
        f"ReLU is the sensible default for hidden layers: with He init its backward signal keeps its size "
        f"(delta_1/delta_L = {short_number(at_init['relu'].ratio)} against sigmoid's {short_number(sig.ratio)}), and the net "
        f"reaches {acc['relu']:.1%} test accuracy in {STEPS} steps against sigmoid's {acc['sigmoid']:.1%}.",
        f"Sigmoid belongs on a binary output, not in hidden layers: sigmoid' <= 1/4 makes the first layer "
        f"learn {short_number(sig.ratio)} times as fast as the last.",
        f"Tanh beats sigmoid in hidden layers: delta_1/delta_L = {short_number(at_init['tanh'].ratio)} and "
        f"{acc['tanh']:.1%} accuracy against {acc['sigmoid']:.1%}.",
        f"For exploding gradients, clip: the N(0, 1) net {_explode_words(wild)}; clipped at 1.0 it trains to "
        f"{clipped.metrics['test_accuracy']:.1%}.",
    ]
    say("\n[bold]6. Recommendation[/bold]")
    for line in lines:
        say(f"  - {line}")
    ctx.result["recommendation"] = lines
    _summary(ctx, lines)
    ctx.write_json()
    ctx.records.append({**sig.to_dict(), "model": f"sigmoid MLP, {DEPTH} hidden layers of {WIDTH}, Xavier init",
                        "data": "digits"})
    return ctx


def _mean_activation_factor(d) -> float:
    """Geometric mean of the activation factors between the hidden layers."""
    mean = geometric_mean([lay.activation_gain for lay in d.layers[:-1]])
    return math.nan if mean is None else mean


def _median(values: list[float]) -> float:
    good = sorted(v for v in values if math.isfinite(v))
    return good[len(good) // 2] if good else math.nan


def _finite_max(values: list[float]) -> float:
    good = [v for v in values if math.isfinite(v)]
    return max(good) if good else math.nan


def _explode_words(run) -> str:
    if run.status == "diverged":
        return f"diverged (NaN/Inf) at step {run.metrics['diverged_at']}"
    return f"reached gradient norms of {_finite_max(run.history['grad_norm']):.3g}"


def _speed_figure(ctx: Context, runs) -> None:
    """The first layer's speed during training, and the test accuracy, per activation."""
    curves = {}
    for name, run in runs.items():
        steps, speed = _first_layer_speed(run)
        curves[name] = {"step": list(steps), "speed": list(speed)}
    ctx.figure("activations", "demo.activations",
               {"steps": STEPS, "curves": curves,
                "test_accuracy": {name: run.metrics["test_accuracy"] for name, run in runs.items()}})


def _explode_figure(ctx: Context, wild, clipped) -> None:
    """The total gradient norm per step of the N(0, 1) net, unclipped and clipped."""
    ctx.figure("exploding", "demo.exploding",
               {"runs": {name: {"step": list(run.history["step"]), "grad_norm": list(run.history["grad_norm"])}
                         for name, run in (("N(0,1) init", wild), ("clip 1.0", clipped))}})


def _summary(ctx: Context, lines: list[str]) -> None:
    text = ["# gradvet demo", "", *[f"- {line}" for line in lines], "", "## Tables", ""]
    for table in ctx.tables:
        text += [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
                 "|" + "---|" * len(table.columns)]
        text += ["| " + " | ".join(cell(c, 3) for c in row) + " |" for row in table.rows]
        text.append("")
    text += ["## Figures", "", *[f"- {p.name}" for p in ctx.figures]]
    path = ctx.out / "summary.md"
    path.write_text("\n".join(text) + "\n")
    ctx.figures.append(path)

