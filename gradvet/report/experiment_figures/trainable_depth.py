"""Figures of `gradvet experiment trainable-depth` (`gradvet.experiments.trainable_depth`): accuracy
over weight variance and depth against mean-field theory's depth scale 6 xi_c (Schoenholz et al. 2017)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure


def heatmap(data: dict[str, Any]) -> Figure:
    """Test accuracy over sw2 (x) and depth (y), with 6 xi_c(sw2) and the edge of chaos. data: sw2, depths,
    accuracy [depth][sw2], x_edges and y_edges (the cells' edges), six_xi_c (at each sw2), theory_sw2 and
    theory_six_xi_c (the curve), edge (sw2 of the edge of chaos, or None), chance, and the setting for the
    title: sb2, width, lr, steps, data."""
    sw2s, depths = data["sw2"], data["depths"]
    acc = np.asarray(data["accuracy"], dtype=float)
    x_edges, y_edges = np.asarray(data["x_edges"]), np.asarray(data["y_edges"])
    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(x_edges, y_edges, acc, cmap="viridis", vmin=0.0, vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=ax, label="test accuracy (diverged = chance)")
    for i, d in enumerate(depths):
        for j, s in enumerate(sw2s):
            ax.text(s, d, f"{acc[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if acc[i, j] > 0.6 else "white")
    top = y_edges[-1]
    curve = np.clip(np.asarray(data["theory_six_xi_c"], dtype=float), 0.0, 2 * top)  # 6 xi_c -> inf at the edge
    ax.plot(data["theory_sw2"], curve, color="red", lw=2, label=r"$6\,\xi_c$ (mean-field theory)")
    ax.plot(sw2s, np.clip(data["six_xi_c"], 0.0, 2 * top), "o", color="red", ms=3)
    edge = data["edge"]
    if edge is not None and x_edges[0] <= edge <= x_edges[-1]:
        ax.axvline(edge, color="tab:orange", ls="--", lw=1.5, label=f"edge of chaos, sw2 = {edge:.3f}")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], top)
    ax.set_xlabel(r"weight variance $\sigma_w^2$ (W ~ N(0, $\sigma_w^2$/n))")
    ax.set_ylabel("hidden layers (depth)")
    ax.set_title(f"Trainable depth of tanh nets, $\\sigma_b^2$ = {data['sb2']:g}, width {data['width']}, "
                 f"{data['data']}\nSGD lr {data['lr']:g}, {data['steps']} steps; chance = {data['chance']:.2f}",
                 fontsize=10)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


def collapse(data: dict[str, Any]) -> Figure:
    """Accuracy against depth / (6 xi_c), one line per sw2: if the theory holds they drop near 1. data:
    sw2, depths, accuracy [depth][sw2], six_xi_c (at each sw2), chance, threshold (trainable above)."""
    sw2s = data["sw2"]
    acc = np.asarray(data["accuracy"], dtype=float)
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    colors = colormaps["coolwarm"](np.linspace(0, 1, len(sw2s)))
    for j, s in enumerate(sw2s):
        six = data["six_xi_c"][j]
        if not (math.isfinite(six) and six > 0):
            continue
        ax.plot(np.asarray(data["depths"]) / six, acc[:, j], "o-", color=colors[j], ms=3, lw=1, label=f"sw2 {s:g}")
    ax.axvline(1.0, color="grey", ls="--", lw=1, label=r"depth = $6\,\xi_c$")
    ax.axhline(data["chance"], color="black", ls=":", lw=1, label="chance")
    ax.axhline(data["threshold"], color="grey", ls=":", lw=1, label="trainable threshold")
    ax.set_xscale("log")
    ax.set_xlabel(r"depth / $6\,\xi_c$")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy against depth in units of the depth scale")
    ax.legend(fontsize=7, ncols=2)
    return fig


DRAWINGS = {"trainable-depth.heatmap": heatmap, "trainable-depth.collapse": collapse}
