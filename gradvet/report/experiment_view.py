"""The view of an experiment or the demo while it runs (`gradvet.experiments.view.View`): its
tables and story printed on a rich console, its figures drawn into PNG and SVG files.

    ctx = run_experiment("cause", quick=True, view=ExperimentView(console()))   # what the CLI does
    ctx = run_experiment("cause", quick=True, view=ExperimentView())            # figures only, silent
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from gradvet.experiments.view import FigureData, Table
from gradvet.report.experiment_figures import write_figure
from gradvet.report.tables import experiment_table


class ExperimentView:
    """Prints to `console` (nothing when None) and writes every figure as STEM.png and STEM.svg."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console
        self.shows_progress = console is not None

    def rule(self, text: str) -> None:
        if self.console is not None:
            self.console.rule(text)

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def table(self, table: Table) -> None:
        if self.console is not None:
            self.console.print(experiment_table(table))

    def figure(self, figure: FigureData, stem: Path) -> list[Path]:
        return write_figure(figure, stem)


__all__ = ["ExperimentView"]
