"""Figures of `gradvet demo` (`gradvet.demo`): the first layer's speed of learning and accuracy per
activation, and exploding gradients with and without clipping."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure


def activations(data: dict[str, Any]) -> Figure:
    """Left: ||dL/db|| of the first hidden layer per step, one line per activation, log y; right: the
    test accuracy after training. data: curves {activation: {step, speed}}, test_accuracy {activation:
    value}, steps (of training)."""
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for name, curve in data["curves"].items():
        ax1.plot(curve["step"], curve["speed"], label=name)
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("||dL/db|| of the first hidden layer")
    ax1.set_title("first layer's speed of learning")
    ax1.legend(fontsize=8)
    names = list(data["test_accuracy"])
    ax2.bar(names, [data["test_accuracy"][n] for n in names], color="#1f5fa8")
    ax2.set_ylim(0, 1)
    ax2.set_title(f"test accuracy after {data['steps']} steps")
    return fig


def exploding(data: dict[str, Any]) -> Figure:
    """The total gradient norm (before clipping) per step, log y, one line per run. data: runs {label:
    {step, grad_norm}}."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, run in data["runs"].items():
        norms = [v if math.isfinite(v) else math.nan for v in run["grad_norm"]]
        ax.plot(run["step"], norms, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("total gradient norm (before clipping)")
    ax.legend()
    return fig


DRAWINGS = {"demo.activations": activations, "demo.exploding": exploding}
