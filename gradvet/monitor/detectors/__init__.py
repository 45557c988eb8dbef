"""Online detectors, one quantity per module (after Cockpit's one quantity per file).

Each detector is fed one step's `StepSignals` at a time, keeps O(window) numbers,
and returns the `Finding`s of that step (the condition holding now); `Alarms`
turns the first finding of an episode into an `Alert`. A detector needs only the
gradients unless its docstring says it reads the loss.
"""

from __future__ import annotations

from typing import Protocol

from gradvet.monitor.alert import Finding
from gradvet.monitor.signals import StepSignals


class Detector(Protocol):
    name: str

    def update(self, signals: StepSignals) -> list[Finding]: ...


from gradvet.monitor.detectors.growth import GradientGrowth  # noqa: E402
from gradvet.monitor.detectors.loss_cusum import LossCusum  # noqa: E402
from gradvet.monitor.detectors.nonfinite import NonFiniteValues  # noqa: E402
from gradvet.monitor.detectors.overshoot import Overshoot  # noqa: E402
from gradvet.monitor.detectors.rising_lr import RisingLearningRate  # noqa: E402
from gradvet.monitor.detectors.spike import GradientSpike  # noqa: E402
from gradvet.monitor.detectors.stall import LossStall  # noqa: E402
from gradvet.monitor.detectors.update_ratio import UpdateRatioCeiling  # noqa: E402
from gradvet.monitor.detectors.vanishing import LayerCollapse  # noqa: E402


def default_detectors() -> list[Detector]:
    """A fresh set of every detector with its measured default thresholds."""
    return [NonFiniteValues(), UpdateRatioCeiling(), GradientGrowth(), GradientSpike(), Overshoot(),
            RisingLearningRate(), LossCusum(), LayerCollapse(), LossStall()]


__all__ = ["Detector", "GradientGrowth", "GradientSpike", "LayerCollapse", "LossCusum", "LossStall",
           "NonFiniteValues", "Overshoot", "RisingLearningRate", "UpdateRatioCeiling", "default_detectors"]
