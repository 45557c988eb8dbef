"""`Run`: what one training run produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradvet.spec import RunSpec

STATUSES = ("done", "diverged")


@dataclass
class Run:
    """The result of `gradvet.train.run(spec)`.

    history: per step "step", "loss", "grad_norm" (total gradient norm before
    clipping); per evaluation "eval_step", "test_loss", "test_accuracy" (None
    for regression). metrics: final_loss, test_loss, test_accuracy, steps_done,
    diverged_at, wall_time (s), step_time (s per step). through_time: for
    recurrent models, ||dL/dh_t|| for t = 0..T at initialisation ("init") and
    after training ("trained"). pretrain: per hidden layer the reconstruction
    loss before and after its autoencoder training. layer_records: (step,
    layer, metric, value) rows from a probe. alerts: the Monitor's alerts
    (each a dict of `gradvet.Alert`'s fields) when `spec.monitor`, else empty.
    """

    spec: RunSpec
    status: str
    history: dict[str, list] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    through_time: dict[str, list[float]] = field(default_factory=dict)
    pretrain: list[dict[str, float]] = field(default_factory=list)
    layer_records: list[tuple[int, str, str, float]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def diverged_at(self) -> int | None:
        return self.metrics.get("diverged_at")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "spec": self.spec.to_dict(),
            "status": self.status,
            "history": self.history,
            "metrics": self.metrics,
            "through_time": self.through_time,
            "pretrain": self.pretrain,
            "alerts": self.alerts,
        }
