"""Figures of `gradvet experiment activations` (`gradvet.experiments.activations`): the first/last
gradient ratio and the accuracy against depth, and the per-layer profile at the deepest depth."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from gradvet.report.experiment_figures._axes import log_values


def _lines(ax, depths: list[int], series: dict[str, list[float]]) -> None:
    for name, ys in series.items():
        ax.plot(depths, log_values(ys), marker="o", label=name)


def ratio_vs_depth(data: dict[str, Any]) -> Figure:
    """delta_1/delta_L against depth, one line per activation, log y; init and trained panels.
    data: depths, and per activation the ratio at each depth under "at_init" and "trained"."""
    depths = data["depths"]
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in zip(axes, ("at_init", "trained"), ("at initialisation", "after training")):
        _lines(ax, depths, data[key])
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(depths), [str(d) for d in depths])
        ax.set_xlabel("depth (hidden layers)")
        ax.set_title(f"first/last gradient ratio {title}")
    axes[0].set_ylabel("delta_1 / delta_L")
    axes[1].legend(fontsize=8, ncols=2)
    return fig


def accuracy_vs_depth(data: dict[str, Any]) -> Figure:
    """Final test accuracy against depth, one line per activation. data: depths, test_accuracy
    (per activation, one value per depth)."""
    depths = data["depths"]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    _lines(ax, depths, data["test_accuracy"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(depths), [str(d) for d in depths])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy against depth")
    ax.legend(fontsize=8, ncols=2)
    return fig


def profile(data: dict[str, Any]) -> Figure:
    """delta_l / delta_L against layer l at one depth, init and trained panels, log y. data: depth,
    and per activation the profile (one value per hidden layer) under "at_init" and "trained"."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in zip(axes, ("at_init", "trained"), ("at initialisation", "after training")):
        for name, profile_values in data[key].items():
            ys = log_values(profile_values)
            ax.plot(range(1, len(ys) + 1), ys, marker=".", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer l (1 = next to the input)")
        ax.set_title(f"depth {data['depth']}, {title}")
    axes[0].set_ylabel("delta_l / delta_L")
    axes[1].legend(fontsize=8, ncols=2)
    return fig


DRAWINGS = {"activations.ratio-vs-depth": ratio_vs_depth, "activations.accuracy-vs-depth": accuracy_vs_depth,
            "activations.profile": profile}
