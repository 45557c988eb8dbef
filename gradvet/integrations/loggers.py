"""Where a handle sends its numbers each recorded step: TensorBoard, Weights & Biases, MLflow or a
function of one's own. `log_to` (of `gradvet.watch`) takes any of them, or a list:

- "tensorboard", or `TensorBoard(logdir)`: scalars in a TensorBoard event file (extra `gradvet[tensorboard]`);
- "wandb", or `WandB(run)`: the active W&B run (`wandb.init()` first; extra `gradvet[wandb]`), with
  gradvet's step as the x-axis of the `gradvet/*` charts (`gradvet/step`), so it never moves W&B's own step;
- "mlflow", or `MLflow(run_id)`: metrics of the active MLflow run, or of `run_id`, with their step
  (extra `gradvet[mlflow]`);
- a function `f(metrics: dict[str, float], step: int)`.

Names are those of `integrations.names` (`gradvet/<layer>/<metric>`). Each logger imports its
package only when it is made, so `import gradvet` never loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from gradvet.base.errors import GradvetError, unknown
from gradvet.integrations.extras import require
from gradvet.integrations.names import PREFIX

NAMES = ("tensorboard", "wandb", "mlflow")


class Logger(Protocol):
    """Anything with `log(metrics, step)` (and optionally `close()`)."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...


class TensorBoard:
    """Scalars in TensorBoard event files under `logdir` (TensorBoard's own default ./runs/... when None),
    or through a SummaryWriter one already has."""

    def __init__(self, logdir: str | None = None, writer: Any = None):
        if writer is None:
            require("tensorboard", "tensorboard", "logging to TensorBoard")
            from torch.utils.tensorboard import SummaryWriter

            writer, self._own = SummaryWriter(log_dir=logdir), True
        else:
            self._own = False
        self.writer = writer

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.flush()
        if self._own:
            self.writer.close()


class WandB:
    """The W&B run `run` (default: the active one, `wandb.run`). gradvet's metrics are charted against
    `gradvet/step` (W&B's define_metric), logged without W&B's step argument, so that one's own
    `wandb.log` calls keep their steps."""

    STEP = f"{PREFIX}/step"

    def __init__(self, run: Any = None):
        wandb = require("wandb", "wandb", "logging to Weights & Biases")
        run = run if run is not None else wandb.run
        if run is None:
            raise GradvetError("log_to='wandb' needs an active W&B run: call wandb.init(...) first, or pass the "
                               "run as log_to=gradvet.integrations.loggers.WandB(run).")
        self.run = run
        run.define_metric(self.STEP)
        run.define_metric(f"{PREFIX}/*", step_metric=self.STEP)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({**metrics, self.STEP: step})


class MLflow:
    """Metrics of the MLflow run `run_id` (default: the active run; when there is none, a run gradvet
    starts at `tracking_uri` and ends in `close`), each with its step, sent in batches of MLflow's
    limit of 1000 metrics."""

    BATCH = 1000

    def __init__(self, run_id: str | None = None, tracking_uri: str | None = None):
        mlflow = require("mlflow", "mlflow", "logging to MLflow")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri)
        self.own = False  # a run gradvet started, so gradvet ends it
        if run_id is None:
            active = mlflow.active_run() if tracking_uri is None else None
            if active is not None:
                run_id = active.info.run_id
            else:
                experiment = self.client.get_experiment_by_name("Default")
                run_id = self.client.create_run(experiment.experiment_id if experiment else "0").info.run_id
                self.own = True
        self.run_id = run_id

    def close(self) -> None:
        if self.own:
            self.client.set_terminated(self.run_id)
            self.own = False

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key=name, value=float(value), timestamp=now, step=step) for name, value in metrics.items()]
        for start in range(0, len(entries), self.BATCH):
            self.client.log_batch(self.run_id, metrics=entries[start:start + self.BATCH])


class Function:
    """A function f(metrics, step) as a logger."""

    def __init__(self, function: Callable[[dict[str, float], int], Any]):
        self.function = function

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.function(metrics, step)


def make_loggers(log_to: Any) -> list[Logger]:
    """The loggers `log_to` names (see the module docstring): None, one of them, or a list."""
    if log_to is None:
        return []
    items = list(log_to) if isinstance(log_to, (list, tuple)) else [log_to]
    return [_logger(item) for item in items]


ALLOWED = "'tensorboard', 'wandb', 'mlflow', a W&B run, a SummaryWriter, an object with .log(metrics, step), " \
          "or a function (metrics, step)"


def _logger(item: Any) -> Logger:
    if isinstance(item, str):
        if item not in NAMES:
            raise unknown("logger", item, ALLOWED, choices=NAMES)
        return {"tensorboard": TensorBoard, "wandb": WandB, "mlflow": MLflow}[item]()
    if type(item).__module__.split(".")[0] == "wandb":  # a W&B run: its own .log would move W&B's step
        return WandB(item)
    if callable(getattr(item, "add_scalar", None)):  # a TensorBoard SummaryWriter
        return TensorBoard(writer=item)
    if callable(getattr(item, "log", None)):
        return item
    if callable(item):
        return Function(item)
    raise GradvetError(f"log_to={item!r} is not a logger; allowed: {ALLOWED}.")


def close_all(loggers: Iterable[Logger]) -> None:
    """Flush and close the loggers gradvet made (a W&B or MLflow run the user started stays open; an
    MLflow run gradvet started is ended)."""
    for logger in loggers:
        close = getattr(logger, "close", None)
        if callable(close):
            close()
