"""Figures of `gradvet experiment cause` (`gradvet.experiments.cause`): the window of inputs where
a sigmoid neuron's factor |w sigma'(wa + b)| reaches 1, and real sigmoid nets' backward signal
against the scalar chain's bound."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gradvet.report.experiment_figures._axes import finish

INIT_STYLES = {"normal": "-", "nielsen": "--", "xavier": ":"}


def window(data: dict[str, Any]) -> Figure:
    """The window's width against |w|: the closed form (formula_w, formula_width), the widths counted
    on a grid (counted_w, counted_width) and the widest point (widest_w, widest)."""
    best_w, best = data["widest_w"], data["widest"]
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    ax.semilogx(data["formula_w"], data["formula_width"], label="(2/|w|) ln(|w|(1+sqrt(1-4/|w|))/2 - 1)")
    ax.semilogx(data["counted_w"], data["counted_width"], "o", label="counted on a grid")
    ax.plot([best_w], [best], "k*", markersize=10, label=f"widest: {best:.3f} at |w| = {best_w:.2f}")
    finish(ax, "|w|", "width of the window of inputs a", "|w sigma'(wa+b)| >= 1 only in a narrow window")
    return fig


def real_nets(data: dict[str, Any]) -> Figure:
    """Per net (init, width) its profile ||dL/dz_j|| / ||dL/dz_D|| over the hidden layers j = 1..depth,
    and the chain's bound (1/4)^(D-j) (chain_bound)."""
    depth = data["depth"]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    layers = np.arange(1, depth + 1)
    for net in data["nets"]:
        ax.semilogy(layers, net["profile"], INIT_STYLES[net["init"]], marker="o", markersize=3,
                    label=f"{net['init']}, n = {net['width']}")
    ax.semilogy(layers, data["chain_bound"], "k-", linewidth=2, alpha=0.4, label="chain bound (1/4)^(D-j)")
    ax.set_xlabel("hidden layer j")
    ax.set_ylabel("||dL/dz_j|| / ||dL/dz_D||")
    ax.set_title(f"Sigmoid nets of {depth} hidden layers at initialisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


DRAWINGS = {"cause.window": window, "cause.real-nets": real_nets}
