"""What the integrations send to a logger at a recorded step: stable names and the total gradient norm.

Names are `gradvet/<layer>/<metric>` (the model input's statistics under `gradvet/input/<metric>`),
the same in every logger and every run of a model, so dashboards and comparisons line up; and
`gradvet/grad_norm`, the norm of every watched parameter's gradient together,

    ||g|| = sqrt( sum over watched layers of weight_grad_norm^2 + bias_grad_norm^2 ),

which is what `torch.nn.utils.clip_grad_norm_` computes (and Lightning's and Hugging Face's
`grad_norm` report) when every parameter sits in a watched layer. A parameter that two layers
share (tied input and output embeddings) is counted once: the later layers holding only parameters
seen before are left out of the sum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from torch import nn

from gradvet.probe.layers import Watched
from gradvet.probe.metrics.bias_grad_norm import BiasGradNorm
from gradvet.probe.metrics.output_grad_norm import OutputGradNorm
from gradvet.probe.metrics.update_ratio import UpdateRatio
from gradvet.probe.metrics.weight_grad_norm import WeightGradNorm
from gradvet.probe.trace import INPUT, Row

PREFIX = "gradvet"
GRAD_NORM = f"{PREFIX}/grad_norm"
# per layer, by default: the gradient of the weights, the backward signal, the size of the update
LOGGED = (WeightGradNorm.name, OutputGradNorm.name, UpdateRatio.name)
PARAMETER_NORMS = (WeightGradNorm.name, BiasGradNorm.name)


def metric_key(layer: str, metric: str) -> str:
    """The logged name of one layer's metric: 'gradvet/<layer>/<metric>'."""
    return f"{PREFIX}/{'input' if layer == INPUT else layer}/{metric}"


def by_step(rows: Iterable[Row]) -> dict[int, list[Row]]:
    """Rows grouped by step, steps in the order they first appear."""
    out: dict[int, list[Row]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row)
    return out


def grad_norm(rows: Iterable[Row], shared: Iterable[str] = ()) -> float:
    """||g|| of one step's rows (the module docstring), leaving out the layers in `shared`; NaN when the
    step has no parameter-gradient norm."""
    skip = set(shared)
    squares = [value * value for _, layer, metric, value in rows if metric in PARAMETER_NORMS and layer not in skip]
    return math.sqrt(math.fsum(squares)) if squares else math.nan


def step_metrics(rows: Sequence[Row], logged: Iterable[str] | None = LOGGED, shared: Iterable[str] = ()) -> dict[str, float]:
    """{name: value} of one step's rows: GRAD_NORM and each layer's metrics in `logged` (all when None)."""
    wanted = None if logged is None else set(logged)
    out = {GRAD_NORM: grad_norm(rows, shared)}
    out.update({metric_key(layer, metric): value for _, layer, metric, value in rows
                if wanted is None or metric in wanted})
    return out


def shared_layers(watched: Iterable[Watched]) -> set[str]:
    """Watched layers whose own parameters all belong to an earlier watched layer too (tied weights)."""
    seen: set[int] = set()
    shared = set()
    for w in watched:
        params = [id(p) for p in w.module.parameters(recurse=False)] if w.kind != "activation" else []
        if params and all(p in seen for p in params):
            shared.add(w.name)
        seen.update(params)
    return shared


def parameters_outside(model: nn.Module, watched: Iterable[Watched]) -> int:
    """How many of `model`'s trainable parameters no watched layer records (an activation's, or a
    module `include` left out): gradvet's total then covers less than the framework's."""
    inside = {id(p) for w in watched if w.kind != "activation" for p in w.module.parameters(recurse=False)}
    return sum(1 for p in model.parameters() if p.requires_grad and id(p) not in inside)
