"""Named, reproducible experiments: the article's claims, each measured on real training.

`gradvet experiment NAME [--data D] [--out DIR] [--seeds K] [--quick]`, or
`run_experiment(name, ...)` from Python. Every experiment prints its tables,
writes PNG+SVG figures and NAME.json to the output folder, and keeps its runs
in OUT/runs.db so a rerun is instant and an interrupted one resumes.
"""

from gradvet.experiments import (  # noqa: F401  (registration)
    activations, cause, exploding, remedies, rnn, speed_of_learning, trainable_depth,
)
from gradvet.experiments.base import EXPERIMENTS, Context, Table, experiment, run_experiment

__all__ = ["EXPERIMENTS", "Context", "Table", "experiment", "run_experiment"]
