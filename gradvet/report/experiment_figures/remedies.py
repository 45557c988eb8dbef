"""Figures of `gradvet experiment remedies` (`gradvet.experiments.remedies`): the first/last gradient
ratio per remedy, and the first layer's learning speed during training."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from gradvet.report.experiment_figures._axes import log_values


def ratio(data: dict[str, Any]) -> Figure:
    """delta_1/delta_L per remedy, at initialisation and after training, log scale. data: labels (one
    per remedy), at_init and trained (one ratio per remedy)."""
    labels = data["labels"]
    fig = Figure(figsize=(8, 0.45 * len(labels) + 1.5))
    ax = fig.subplots()
    ys = range(len(labels))
    for offset, key, name in ((-0.2, "at_init", "at initialisation"), (0.2, "trained", "after training")):
        ax.barh([y + offset for y in ys], log_values(data[key]), height=0.4, label=name)
    ax.set_xscale("log")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("delta_1 / delta_L (first over last hidden layer)")
    ax.set_title("first/last gradient ratio, failing net and remedies")
    ax.legend(fontsize=8)
    return fig


def first_layer_speed(data: dict[str, Any]) -> Figure:
    """The first layer's learning speed ||dL/db_1|| during training (seed 0), log y. data: curves
    {remedy label: {step, speed}}."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for label, curve in data["curves"].items():
        ax.plot(curve["step"], [v if v > 0 else math.nan for v in curve["speed"]], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||dL/db_1||, first hidden layer")
    ax.set_title("learning speed of the first hidden layer (seed 0)")
    ax.legend(fontsize=7, ncols=2)
    return fig


DRAWINGS = {"remedies.ratio": ratio, "remedies.first-layer-speed": first_layer_speed}
