"""Figures of activation functions and their derivatives.

- `plot_activation`: one activation, f (solid) and f' (dashed) on shared axes
  with the axes through the origin, as in the article's per-function figures.
- `plot_overlay`: several activations for comparison, function and
  derivative in two panels.
- `plot_family`: the summary chart of a family as small multiples, one panel
  per member with f, f' and its key numbers (max |f'|, E[f'(z)^2]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from gradvet.activations import Activation, activation, catalog
from gradvet.base.errors import GradvetError
from gradvet.base.validation import output_file, x_range

FORMATS = (".png", ".svg", ".pdf")
F_COLOUR, GRAD_COLOUR = "#1f5fa8", "#d0562c"


def check_output(path: str | Path) -> Path:
    """The output path, its folder created; GradvetError for a bad suffix or an unwritable place."""
    return output_file("figure", path, FORMATS)


def _curves(act: Activation, xlim: tuple[float, float], points: int = 1201):
    x = torch.linspace(xlim[0], xlim[1], points, dtype=torch.float64)
    with torch.no_grad():
        f = act.fn(x).numpy()
        g = act.grad(x).numpy()
    xs = x.numpy()
    # Break the line at jumps so a step is drawn as a step, not a steep ramp.
    for values in (f, g):
        jumps = np.abs(np.diff(values)) > 0.25 * (np.nanmax(np.abs(values[np.isfinite(values)]), initial=1.0) + 1)
        values[1:][jumps] = np.nan
    return xs, f, g


def _style(ax, xlim) -> None:
    ax.axhline(0, color="0.6", lw=0.8, zorder=0)
    ax.axvline(0, color="0.6", lw=0.8, zorder=0)
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_xlim(*xlim)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(fig: Figure, path: str | Path) -> Path:
    out = check_output(path)
    try:
        fig.savefig(out, dpi=130, bbox_inches="tight")
    except OSError as err:
        raise GradvetError(f"cannot write figure {str(out)!r}: {err.strerror or err}.") from None
    return out


def _ylim(f: np.ndarray, g: np.ndarray) -> tuple[float, float] | None:
    vals = np.concatenate([f[np.isfinite(f)], g[np.isfinite(g)]])
    if vals.size == 0:
        return None
    lo, hi = np.percentile(vals, [1, 99])
    pad = 0.08 * max(hi - lo, 1e-9)
    return float(lo - pad), float(hi + pad)


def plot_activation(act: Activation | str, path: str | Path, xlim: tuple[float, float] = (-5, 5)) -> Path:
    """f and f' of one activation on shared axes; returns the written path."""
    xlim = x_range(*xlim)
    act = activation(act)
    props = act.properties
    xs, f, g = _curves(act, xlim)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    _style(ax, xlim)
    ax.plot(xs, f, color=F_COLOUR, lw=2.2, label=f"f(x) = {act.formula}" if len(act.formula) < 48 else "f(x)")
    ax.plot(xs, g, color=GRAD_COLOUR, lw=1.8, ls="--", label="f'(x)")
    lim = _ylim(f, g)
    if lim:
        ax.set_ylim(*lim)
    ax.set_xlabel("x")
    ax.set_title(f"{act.label()}   range {props.output_range}, max |f'| = {props.max_grad:.4g}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_overlay(acts: Sequence[Activation | str], path: str | Path, xlim: tuple[float, float] = (-5, 5),
                 title: str | None = None) -> Path:
    """Several activations: functions in the left panel, derivatives in the right."""
    xlim = x_range(*xlim)
    acts = [activation(a) for a in acts]
    if not acts:
        raise GradvetError("nothing to plot: give at least one activation name or formula, or --family.")
    fig = Figure(figsize=(11, 4.4))
    ax_f, ax_g = fig.subplots(1, 2)
    for ax, name in ((ax_f, "f(x)"), (ax_g, "f'(x)")):
        _style(ax, xlim)
        ax.set_title(name)
        ax.set_xlabel("x")
    colours = _palette(len(acts))
    all_f, all_g = [], []
    for act, colour in zip(acts, colours):
        xs, f, g = _curves(act, xlim)
        ax_f.plot(xs, f, color=colour, lw=1.8, label=act.label())
        ax_g.plot(xs, g, color=colour, lw=1.8)
        all_f.append(f)
        all_g.append(g)
    lim_f = _ylim(np.concatenate(all_f), np.concatenate(all_f))
    lim_g = _ylim(np.concatenate(all_g), np.concatenate(all_g))
    if lim_f:
        ax_f.set_ylim(*lim_f)
    if lim_g:
        ax_g.set_ylim(*lim_g)
    ax_f.legend(fontsize=7, frameon=False, loc="upper left", ncol=2 if len(acts) > 6 else 1)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_family(family: str, path: str | Path, xlim: tuple[float, float] = (-5, 5)) -> Path:
    """Small multiples of every member of a family: f (solid), f' (dashed), key numbers."""
    xlim = x_range(*xlim)
    members = catalog(family)
    cols = min(6, len(members))
    rows = math.ceil(len(members) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, act in zip(axes, members):
        props = act.properties
        xs, f, g = _curves(act, xlim, points=601)
        _style(ax, xlim)
        ax.plot(xs, f, color=F_COLOUR, lw=1.8)
        ax.plot(xs, g, color=GRAD_COLOUR, lw=1.4, ls="--")
        lim = _ylim(f, g)
        if lim:
            ax.set_ylim(*lim)
        ax.set_title(act.name, fontsize=9, fontweight="bold")
        ax.text(0.02, 0.98, f"max|f'| {props.max_grad:.3g}\nE[f'(z)^2] {props.grad_sq_gauss:.3g}",
                transform=ax.transAxes, fontsize=6.5, va="top", color="0.3")
        ax.tick_params(labelsize=6)
    for ax in axes[len(members):]:
        ax.set_visible(False)
    fig.suptitle(f"The {family} family: f(x) solid, f'(x) dashed", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
