"""Figures of `gradvet experiment residual` (`gradvet.experiments.residual`): the backward signal on the
residual stream per block (log scale) for each variant, and branch_ratio per block."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from gradvet.report.experiment_figures._axes import finish, log_values

WHEN = {"init": "at initialisation", "trained": "after training"}


def _to_last(values: list[float]) -> list[float]:
    """Each block's value over the last block's (nan where either is missing)."""
    last = values[-1] if values else float("nan")
    return [v / last if last and last == last else float("nan") for v in values]


def _predicted(factors: list[float]) -> list[float]:
    """The predicted ||dL/dh_l|| / ||dL/dh_L|| of blocks 1..L from the factors of blocks 2..L: the product
    of the factors above l."""
    return [math.prod(factors[block:]) for block in range(len(factors) + 1)]


def mlp_profile(data: dict[str, Any]) -> Figure:
    """||dL/dh_l|| / ||dL/dh_L|| per block l at init, one panel per depth (three to a row), one line per
    variant, the prediction dashed. data: variants {label: {depth: [||dL/dh_l|| per block]}}, predicted
    {label: {depth: [expected factor of blocks 2..L]}}."""
    variants, predicted = data["variants"], data["predicted"]
    depths = sorted({d for per in variants.values() for d in per}, key=int)
    cols = min(3, len(depths))
    rows = math.ceil(len(depths) / cols)
    fig = Figure(figsize=(4.6 * cols, 4.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(depths):]:
        ax.set_visible(False)
    for ax, depth in zip(axes, depths):
        for i, (label, per) in enumerate(variants.items()):
            values = per.get(depth)
            if not values:
                continue
            blocks = list(range(1, len(values) + 1))
            ax.plot(blocks, log_values(_to_last(values)), "o-", ms=3, color=f"C{i}", label=label)
            factors = predicted.get(label, {}).get(depth)
            if factors and len(factors) == len(values) - 1:
                ax.plot(blocks, log_values(_predicted(factors)), "--", color=f"C{i}", lw=1)
        ax.set_yscale("log")
        finish(ax, "block l", "||dL/dh_l|| / ||dL/dh_L||", f"L = {depth} blocks (dashed: predicted)")
    fig.suptitle("Residual MLP at initialisation: the backward signal on the stream, per block")
    return fig


def _panels(fig: Figure, variants: dict[str, dict[str, dict[str, list[float]]]], scale, ylabel: str, log: bool):
    """One panel per moment (init, trained): a line per (variant, depth), colour by depth, style by variant."""
    depths = sorted({d for per in variants.values() for d in per}, key=int)
    axes = fig.subplots(1, len(WHEN), squeeze=False)[0]
    styles = ("-", "--", ":", "-.")
    for ax, (when, title) in zip(axes, WHEN.items()):
        for j, (label, per) in enumerate(variants.items()):
            for i, depth in enumerate(depths):
                values = per.get(depth, {}).get(when)
                if not values:
                    continue
                shown = scale(values)
                # deeper stacks thicker and below: a shallower stack from the same seed starts with the same
                # layers, so at init its line lies on the deeper one's first blocks
                ax.plot(range(1, len(values) + 1), log_values(shown) if log else shown, styles[j % len(styles)],
                        color=f"C{i}", lw=1.2 + 1.5 * i, zorder=3 - i, alpha=0.85, label=f"{label}, L = {depth}")
        if log:
            ax.set_yscale("log")
        finish(ax, "block l", ylabel, title)
    return axes


def transformer_profile(data: dict[str, Any]) -> Figure:
    """||dL/dh_l|| / ||dL/dh_L|| per block, at init and after training, Post-LN against Pre-LN at each
    depth. data: variants {label: {depth: {init: [...], trained: [...]}}}."""
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    _panels(fig, data["variants"], _to_last, "||dL/dh_l|| / ||dL/dh_L||", log=True)
    fig.suptitle("Transformer stacks: the backward signal on the residual stream, per block")
    return fig


def branch_ratio(data: dict[str, Any]) -> Figure:
    """branch_ratio ||h_l - x_l|| / ||x_l|| per block: the transformers at init and after training, and the
    residual MLPs at init at their largest depth. data: transformer {label: {depth: {init, trained}}},
    mlp {label: [per block]}, mlp_depth."""
    fig = Figure(figsize=(16, 4.6), layout="constrained")
    top, bottom = fig.subfigures(1, 2, width_ratios=[2, 1])
    _panels(top, data["transformer"], list, "||h_l - x_l|| / ||x_l||", log=True)
    ax = bottom.add_subplot()
    for i, (label, values) in enumerate(data["mlp"].items()):
        ax.plot(range(1, len(values) + 1), log_values(values), "o-", ms=2, color=f"C{i}", label=label)
    ax.set_yscale("log")
    finish(ax, "block l", "||h_l - x_l|| / ||x_l||", f"residual MLP at init, L = {data['mlp_depth']}")
    fig.suptitle("How much each block changes the stream (branch_ratio); zero-initialised branches are 0, not drawn")
    return fig


DRAWINGS = {"residual.mlp-profile": mlp_profile, "residual.transformer-profile": transformer_profile,
            "residual.branch-ratio": branch_ratio}
