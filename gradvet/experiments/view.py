"""What an experiment hands to whoever shows it: tables and figures as plain data, and the `View`
protocol.

Experiments (and the demo) produce plain data only: `Table`s (cells as they are printed) and
`FigureData` (a kind and the numbers to draw). A `View`, passed in by the caller, shows them
while the experiment runs: the command line builds one from the report layer
(`gradvet.report.experiment_view.ExperimentView`), which prints the tables and draws each
figure into OUT/NAME-STEM.png and .svg. Without a view an experiment prints nothing and
writes no figure; its JSON and `Context.figure_data` still hold every number, for any view
to draw later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass
class Table:
    """A printed table: title, column names, rows of values, and an optional note under it."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


@dataclass(frozen=True)
class FigureData:
    """One figure as plain data: `kind` names the drawing (a key of the report layer's figure
    registry, `gradvet.report.experiment_figures.DRAWINGS`), `data` holds what it draws (numbers,
    lists, strings), `stem` the file name's end (OUT/NAME-STEM.png and .svg)."""

    stem: str
    kind: str
    data: dict[str, Any]


class View(Protocol):
    """Shows an experiment while it runs. Text may carry rich markup ([bold], [dim])."""

    shows_progress: bool  # whether long steps (a sweep) should draw a progress bar

    def rule(self, text: str) -> None:
        """A heading: the experiment's name and title."""

    def say(self, text: str) -> None:
        """A line of the story."""

    def table(self, table: Table) -> None:
        """A table, as the experiment built it."""

    def figure(self, figure: FigureData, stem: Path) -> list[Path]:
        """Draw `figure` into files `stem` + each suffix; returns the files written."""
