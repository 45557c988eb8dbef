"""The report's figures as inline SVG strings (matplotlib, headless, no pyplot state).

Text stays text (svg.fonttype 'none': searchable, small, no font files); each figure gets
its own id salt so that several SVGs on one page never share an element id.

- `layer_profile`: per-layer backward-signal norm on a log scale (the article's picture),
  optionally with theory's prediction;
- `layer_step_heatmap`: layer x step of a per-layer metric, log colour scale (fastai's
  "colorful dimension" view, for gradients), with a run's alerts marked;
- `learning_curves`: training loss (and test accuracy) per run, with the runs' alerts marked;
- `histograms`: per-layer activation histograms;
- `phase_diagram`: the order-chaos boundary;
- `bars`: one number per item (activation comparison).

Every piece of text a figure takes from a result goes through `figure_text`: cut to
FIGURE_TEXT_CHARS characters and with its dollar signs escaped, so that matplotlib draws
it as written and never parses it as mathtext (a '$...$' label would otherwise be parsed,
and fail or take minutes on a long one). Figures grow with the number of layers or items
only up to MAX_INCHES, and label at most MAX_TICKS of them. Finite numbers near the float
range cannot be placed on a linear axis (matplotlib's tick and limit arithmetic overflows);
such a figure is drawn as a line of text saying so (`drawn_or_said`), never an exception.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

_salt = itertools.count()
FIGURE_TEXT_CHARS = 60
MAX_INCHES = 14.0  # the tallest figure, however many layers or items
MAX_TICKS = 50  # labelled rows of a heatmap or a bar chart
MAX_PANELS = 40  # histogram panels: the first MAX_PANELS layers
ALERT_MARKS = "alert-marks"  # the SVG group id (plus a salt) of the alert markers of a figure
ALERT_COLOUR = "#b00020"
PALETTE = ("#1f5fa8", "#d0562c", "#2e7d32", "#7b3fa0", "#b8860b", "#00838f", "#c2185b", "#5d4037", "#455a64")


def to_svg(fig: Figure) -> str:
    """The figure as an <svg> element (no XML prolog or DOCTYPE), ids unique on the page."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"gradvet-{next(_salt)}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def figure_text(text: object, limit: int = FIGURE_TEXT_CHARS) -> str:
    """`text` as matplotlib should draw it: cut to `limit` characters ('…' marks a cut), dollar
    signs escaped (matplotlib treats an even number of unescaped '$' as mathtext)."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _height(items: int, per_item: float, base: float) -> float:
    """Inches for a figure of `items` rows: `base` plus `per_item` each, at most MAX_INCHES."""
    return min(base + per_item * items, MAX_INCHES)


def _label_rows(ax, labels: Sequence[str], fontsize: float) -> None:
    """Row labels on the y axis, every k-th one when there are more than MAX_TICKS."""
    every = max(1, math.ceil(len(labels) / MAX_TICKS))
    ticks = range(0, len(labels), every)
    ax.set_yticks(list(ticks))
    ax.set_yticklabels([figure_text(labels[i]) for i in ticks], fontsize=fontsize)


def drawn_or_said(draw):
    """`draw`, or where matplotlib cannot place the values (ValueError, OverflowError) an SVG line saying so."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> str:
        try:
            with np.errstate(all="ignore"):  # overflow on the way to the error below is no news
                return draw(*args, **kwargs)
        except (ValueError, OverflowError) as err:
            why = html.escape(f"{type(err).__name__}: {err}"[: 2 * FIGURE_TEXT_CHARS], quote=False)
            return ('<svg xmlns="http://www.w3.org/2000/svg" width="720" height="40"><text x="4" y="24" '
                    f'font-size="13">not drawn: matplotlib cannot place these values on its axes ({why})</text></svg>')

    return wrapper


def _finite_positive(values: Sequence[float | None]) -> list[float]:
    return [v if (v is not None and isinstance(v, (int, float)) and math.isfinite(v) and v > 0) else math.nan
            for v in values]


@drawn_or_said
def layer_profile(layers: Sequence[str], series: dict[str, Sequence[float | None]],
                  title: str = "backward signal per hidden layer", ylabel: str = "||dL/dz_l|| / ||dL/dz_L||") -> str:
    """One line per series (e.g. measured and predicted, or two steps) over the layers, log scale."""
    fig = Figure(figsize=(7.2, 3.6))
    ax = fig.add_subplot()
    idx = np.arange(1, len(layers) + 1)
    for k, (label, values) in enumerate(series.items()):
        ax.semilogy(idx, _finite_positive(values), "o-" if k == 0 else "s--", color=PALETTE[k % len(PALETTE)],
                    lw=2 if k == 0 else 1.5, ms=4 if k == 0 else 3, label=figure_text(label))
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(figure_text(ylabel))
    ax.set_title(figure_text(title, 2 * FIGURE_TEXT_CHARS), fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return to_svg(fig)


@drawn_or_said
def layer_step_heatmap(layers: Sequence[str], steps: Sequence[int], values: np.ndarray,
                       title: str = "gradient norm per layer over training",
                       alerts: Sequence[tuple[int, int | None]] = ()) -> str:
    """values[i, j]: layer i at steps[j]; non-positive or missing cells are blank. alerts: (step, row of the
    layer or None) of each alert: a red cross on its layer's row, or a dashed red line across all rows for
    an alert of the whole model (or of a layer not drawn); the markers form the SVG group ALERT_MARKS."""
    fig = Figure(figsize=(7.6, _height(max(len(layers), 4), 0.28, 0.6)))
    ax = fig.add_subplot()
    data = np.array(values, dtype=float)
    data[~np.isfinite(data) | (data <= 0)] = np.nan
    good = data[np.isfinite(data)]
    norm = LogNorm(vmin=float(good.min()), vmax=float(good.max())) if good.size and good.min() < good.max() else None
    image = ax.imshow(data, aspect="auto", interpolation="nearest", cmap="viridis", norm=norm,
                      extent=(steps[0] - 0.5, steps[-1] + 0.5, len(layers) - 0.5, -0.5) if len(steps) > 1 else None)
    _label_rows(ax, layers, 7)
    ax.set_xlabel("step")
    ax.set_title(figure_text(title, 2 * FIGURE_TEXT_CHARS), fontsize=11)
    fig.colorbar(image, ax=ax, fraction=0.035, pad=0.02)
    if alerts and len(steps) > 1:
        crosses = [(step, row) for step, row in alerts if row is not None]
        group = ax.scatter([c[0] for c in crosses], [c[1] for c in crosses], marker="X", s=60, color=ALERT_COLOUR,
                           edgecolors="white", linewidths=0.8, zorder=3, label="alert")
        group.set_gid(f"{ALERT_MARKS}-{next(_salt)}")
        for step, row in alerts:
            if row is None:
                ax.axvline(step, color=ALERT_COLOUR, ls="--", lw=1.2, gid=f"{ALERT_MARKS}-line-{next(_salt)}")
        low, high = min(steps[0], *(a[0] for a in alerts)), max(steps[-1], *(a[0] for a in alerts))
        ax.set_xlim(low - 0.5, high + 0.5)
    return to_svg(fig)


@drawn_or_said
def learning_curves(curves: dict[str, tuple[Sequence[int], Sequence[float]]], ylabel: str = "training loss",
                    title: str = "learning curves", log: bool = False,
                    alerts: dict[str, Sequence[tuple[float, float]]] | None = None) -> str:
    """One line per curve; alerts[label]: (x, y) of each alert of that curve, a triangle in the curve's
    colour with a red edge (the markers of all curves form the SVG group ALERT_MARKS)."""
    fig = Figure(figsize=(7.2, 3.6))
    ax = fig.add_subplot()
    marks: list[tuple[float, float, str]] = []
    for (label, (xs, ys)), colour in zip(curves.items(), itertools.cycle(PALETTE)):
        ys = [y if (y is not None and isinstance(y, (int, float)) and math.isfinite(y)) else math.nan for y in ys]
        ax.plot(list(xs), ys, color=colour, lw=1.4, label=figure_text(label))
        marks += [(x, y, colour) for x, y in (alerts or {}).get(label, ())]
    if marks:
        group = ax.scatter([m[0] for m in marks], [m[1] for m in marks], c=[m[2] for m in marks], marker="v", s=55,
                           edgecolors=ALERT_COLOUR, linewidths=1.4, zorder=3, label="alert")
        group.set_gid(f"{ALERT_MARKS}-{next(_salt)}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(figure_text(ylabel))
    ax.set_title(figure_text(title, 2 * FIGURE_TEXT_CHARS), fontsize=11)
    ax.grid(True, alpha=0.3)
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    return to_svg(fig)


@drawn_or_said
def histograms(hists: dict[str, tuple[Sequence[float], Sequence[int]]], title: str = "activations per layer") -> str:
    """hists[layer] = (bin edges, counts): small multiples, one panel per layer (the first MAX_PANELS)."""
    hists = dict(itertools.islice(hists.items(), MAX_PANELS))
    n = len(hists)
    cols = min(n, 5)
    rows = math.ceil(n / cols) if n else 1
    fig = Figure(figsize=(2.1 * cols + 0.6, 1.7 * rows + 0.6), layout="constrained")
    for k, (layer, (edges, counts)) in enumerate(hists.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        edges = np.asarray(edges, dtype=float)
        ax.stairs(np.asarray(counts, dtype=float), edges, fill=True, color=PALETTE[k % len(PALETTE)], alpha=0.8)
        ax.set_title(figure_text(layer, 30), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    fig.suptitle(figure_text(title, 2 * FIGURE_TEXT_CHARS), fontsize=10)
    return to_svg(fig)


@drawn_or_said
def phase_diagram(sb2: Sequence[float], critical_sw2: Sequence[float | None], name: str,
                  marker: tuple[float, float] | None = None) -> str:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    pts = [(b, s) for b, s in zip(sb2, critical_sw2) if s is not None]
    if pts:
        ax.plot([p[1] for p in pts], [p[0] for p in pts], color=PALETTE[1], lw=2, label="edge of chaos (chi1 = 1)")
    if marker is not None:
        ax.plot([marker[0]], [marker[1]], "o", color=PALETTE[0], ms=7, label="this network")
    ax.set_xlabel("sw2 (weight variance x fan-in)")
    ax.set_ylabel("sb2 (bias variance)")
    ax.set_title(f"{figure_text(name)}: ordered (vanishing) left, chaotic (exploding) right", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return to_svg(fig)


@drawn_or_said
def bars(labels: Sequence[str], values: Sequence[float | None], xlabel: str, title: str, log: bool = False) -> str:
    fig = Figure(figsize=(7.2, _height(max(len(labels), 3), 0.3, 0.8)))
    ax = fig.add_subplot()
    vals = [v if (v is not None and isinstance(v, (int, float)) and math.isfinite(v)) else 0.0 for v in values]
    ax.barh(range(len(labels)), vals, color=[PALETTE[i % len(PALETTE)] for i in range(len(labels))])
    _label_rows(ax, labels, 8)
    ax.invert_yaxis()
    if log and any(v > 0 for v in vals):
        ax.set_xscale("log")
    ax.set_xlabel(figure_text(xlabel))
    ax.set_title(figure_text(title, 2 * FIGURE_TEXT_CHARS), fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    return to_svg(fig)
