"""The figure of `gradvet experiment exploding` (`gradvet.experiments.exploding`): loss and gradient
norm per step for each remedy, one column per net."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from gradvet.report.experiment_figures._axes import log_values


def curves(data: dict[str, Any]) -> Figure:
    """Loss (top) and total gradient norm before clipping (bottom) per step, log scale, one column per
    net, the first case (no remedy) as a thick grey line; x marks the last finite point of a run that
    diverged. data: clip (the clipping threshold), nets: {title: {case label: {step, loss, grad_norm}}}."""
    nets, clip = data["nets"], data["clip"]
    fig = Figure(figsize=(13, 8), layout="constrained")
    axes = fig.subplots(2, len(nets), squeeze=False)
    for col, (title, cases) in enumerate(nets.items()):
        top, bottom = axes[0][col], axes[1][col]
        for i, (label, history) in enumerate(cases.items()):
            steps, loss, norm = history["step"], history["loss"], history["grad_norm"]
            style = {"color": "black", "lw": 3.0, "alpha": 0.6} if i == 0 else {"color": f"C{i}", "lw": 1.2}
            (line,) = top.plot(steps, log_values(loss), label=label, **style)
            bottom.plot(steps, log_values(norm), **style)
            if steps and not (math.isfinite(loss[-1]) and math.isfinite(norm[-1])):
                for ax, values in ((top, loss), (bottom, norm)):
                    finite = [(s, v) for s, v in zip(steps, values) if math.isfinite(v) and v > 0]
                    if finite:
                        ax.plot(*finite[-1], "x", color=line.get_color(), ms=9, mew=2)
        bottom.axhline(clip, color="gray", ls="--", lw=1, label=f"clip threshold {clip:g}")
        top.set_title(title, fontsize=10)
        for ax in (top, bottom):
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
        top.set_ylabel("training loss")
        bottom.set_ylabel("total gradient norm (before clipping)")
        bottom.set_xlabel("step")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7, loc="upper right")
    fig.suptitle("Exploding gradients: the loss blows up without a remedy (x = NaN/Inf next step)")
    return fig


DRAWINGS = {"exploding.curves": curves}
