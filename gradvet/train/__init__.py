"""One training run with every remedy switch: `run(RunSpec(...)) -> Run`."""

from gradvet.spec import RunSpec
from gradvet.train.loop import StepObserver, evaluate, run
from gradvet.train.result import Run

__all__ = ["Run", "RunSpec", "StepObserver", "evaluate", "run"]
