"""`Alarms`: feeds each step's signals to the detectors and turns findings into deduplicated alerts.

An episode begins with a finding and ends after `quiet` steps without one of the
same kind (and, for per-layer kinds such as vanishing, the same layer); each
episode gives one `Alert` (not one per step), naming the layer of its first finding.
The steps far from any finding (more than `quiet` steps) are the healthy ones:
their gradient norms (the latest HEALTHY_KEPT) give the remedy's clip value.
`Alarms` works on recorded signals as well as live ones (the benchmark replays
a corpus through it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from gradvet.monitor.alert import PER_LAYER_KINDS, Alert
from gradvet.monitor.detectors import Detector, default_detectors
from gradvet.monitor.remedies import remedy
from gradvet.monitor.signals import StepSignals

QUIET = 20
HEALTHY_KEPT = 1000


class Alarms:
    def __init__(self, detectors: Sequence[Detector] | None = None, quiet: int = QUIET):
        self.detectors = list(detectors) if detectors is not None else default_detectors()
        self.quiet = quiet
        self.alerts: list[Alert] = []
        self._last: dict[tuple[str, str | None], int] = {}  # (kind, layer) -> last step it was found
        self._last_any = -math.inf
        self._healthy: deque[float] = deque(maxlen=HEALTHY_KEPT)

    def update(self, signals: StepSignals) -> list[Alert]:
        """The new alerts of this step (also appended to `alerts`)."""
        step = signals.step
        found = [(detector, f) for detector in self.detectors for f in detector.update(signals)]
        if not found and step - self._last_any > self.quiet and math.isfinite(signals.grad_norm):
            self._healthy.append(signals.grad_norm)
        new: list[Alert] = []
        for detector, f in found:
            key = (f.kind, f.layer if f.kind in PER_LAYER_KINDS else None)
            last = self._last.get(key)
            self._last[key] = step
            self._last_any = step
            if last is not None and step - last <= self.quiet:
                continue
            new.append(Alert(step=step, kind=f.kind, layer=f.layer, message=f.message[0].upper() + f.message[1:] + ".",
                             remedy=remedy(f, step, signals.lr, self._healthy), detector=detector.name,
                             since=f.since, value=f.value))
        self.alerts.extend(new)
        return new
