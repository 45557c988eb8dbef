"""Figures of `gradvet experiment rnn` (`gradvet.experiments.rnn`): the gradient through time per
sequence length, and who solves the adding problem."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from gradvet.report.experiment_figures._axes import log_values

COLORS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}


def profiles(data: dict[str, Any]) -> Figure:
    """||dL/dh_t|| against t on a log scale, one panel per length (three to a row); solid at
    initialisation, dashed after training. data: panels [{length, models [{kind, label, init, trained}]}]."""
    panels = data["panels"]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.4 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        for model in panel["models"]:
            t = list(range(len(model["init"])))
            colour = COLORS[model["kind"]]
            ax.plot(t, log_values(model["init"]), color=colour, label=f"{model['label']}, init")
            if model["trained"]:
                ax.plot(t, log_values(model["trained"]), color=colour, ls="--", label=f"{model['label']}, trained")
        ax.set_yscale("log")
        ax.set_title(f"T = {panel['length']}")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||dL/dh_t||")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle("Gradient through time on the adding problem (missing points: underflow to 0)")
    return fig


def test_mse(data: dict[str, Any]) -> Figure:
    """Test MSE against sequence length per model, with the baseline of always predicting 1 and the
    'solved' line. data: lengths, models [{kind, label, mean_mse}], baseline_mse, solved_mse."""
    lengths, solved = data["lengths"], data["solved_mse"]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for model in data["models"]:
        ax.plot(lengths, model["mean_mse"], "o-", color=COLORS[model["kind"]], label=model["label"])
    ax.axhline(data["baseline_mse"], color="gray", ls="--", label="predict 1 (1/6)")
    ax.axhline(solved, color="black", ls=":", label=f"solved (< {solved})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lengths, [str(L) for L in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("test MSE")
    ax.legend(fontsize=8)
    ax.set_title("Adding problem: who solves it")
    return fig


DRAWINGS = {"rnn.profiles": profiles, "rnn.test-mse": test_mse}
