"""The figures of the experiments and the demo, drawn from their plain data.

An experiment keeps each figure as `gradvet.experiments.view.FigureData` (a kind and the
numbers); `DRAWINGS` maps the kind to the function that draws it (data -> matplotlib Figure),
one module per experiment; `write_figure` draws one into STEM.png and STEM.svg (130 dpi,
tight bounding box), the files `gradvet experiment` and `gradvet demo` write.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.experiments.view import FigureData
from gradvet.report.activation_plots import _save
from gradvet.report.experiment_figures import (
    activations,
    cause,
    demo,
    exploding,
    remedies,
    residual,
    rnn,
    speed_of_learning,
    trainable_depth,
)

DRAWINGS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **activations.DRAWINGS, **cause.DRAWINGS, **demo.DRAWINGS, **exploding.DRAWINGS, **remedies.DRAWINGS,
    **residual.DRAWINGS, **rnn.DRAWINGS, **speed_of_learning.DRAWINGS, **trainable_depth.DRAWINGS,
}
SUFFIXES = (".png", ".svg")


def draw(figure: FigureData):
    """The matplotlib Figure of `figure` (GradvetError for a kind no drawing knows)."""
    if figure.kind not in DRAWINGS:
        raise GradvetError(f"figure kind {figure.kind!r} has no drawing; kinds: {', '.join(sorted(DRAWINGS))}.")
    return DRAWINGS[figure.kind](figure.data)


def write_figure(figure: FigureData, stem: str | Path) -> list[Path]:
    """Draw `figure` into STEM.png and STEM.svg; returns the two paths."""
    fig = draw(figure)
    return [_save(fig, f"{stem}{suffix}") for suffix in SUFFIXES]


__all__ = ["DRAWINGS", "SUFFIXES", "draw", "write_figure"]
