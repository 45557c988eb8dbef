"""Named, reproducible experiments: the article's claims, each measured on real training.

`gradvet experiment NAME [--data D] [--out DIR] [--seeds K] [--quick]`, or
`run_experiment(name, ..., view=...)` from Python. Every experiment builds its tables
and figures as plain data and writes NAME.json to the output folder, and keeps its runs
in OUT/runs.db so a rerun is instant and an interrupted one resumes. The view
(`experiments.view`; the report layer's `ExperimentView` on the command line) prints the
tables and draws the PNG+SVG figures.
"""

from gradvet.experiments import (  # noqa: F401  (registration)
    activations,
    cause,
    exploding,
    remedies,
    residual,
    rnn,
    speed_of_learning,
    trainable_depth,
)
from gradvet.experiments.base import EXPERIMENTS, Context, experiment, run_experiment
from gradvet.experiments.view import FigureData, Table, View

__all__ = ["EXPERIMENTS", "Context", "FigureData", "Table", "View", "experiment", "run_experiment"]
