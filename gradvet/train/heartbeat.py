"""`Heartbeat`: a running engine's progress, handed to a callback now and then (for `gradvet watch`).

Every INTERVAL seconds of training, and at once on a step that brought new
alerts, the callback gets one plain dict: step (optimiser steps done), steps
(the run's budget), loss and grad_norm (this step's, before clipping), layers
({layer: ||g||} of the step, from the run's Monitor; empty without one) and
alerts (the new alerts since the last beat, each a dict of the Alert's fields). The engine
never waits for it beyond the call: a sink that writes somewhere (a store,
`gradvet.sweep.live`) keeps its own faults to itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

INTERVAL = 1.0  # seconds between beats: a terminal view refreshed about as often loses nothing


class Heartbeat:
    def __init__(self, on_progress: Callable[[dict[str, Any]], object], steps: int, monitor: Any = None,
                 interval: float = INTERVAL):
        self.on_progress, self.steps, self.monitor, self.interval = on_progress, steps, monitor, interval
        self._last = -float("inf")
        self._alerts_sent = 0

    def beat(self, step: int, loss: float, grad_norm: float) -> None:
        """Called after each step's numbers are known; beats when the interval has passed or alerts are new."""
        alerts = self.monitor.alerts if self.monitor is not None else []
        now = time.monotonic()
        if now - self._last < self.interval and len(alerts) == self._alerts_sent:
            return
        self._last = now
        new, self._alerts_sent = alerts[self._alerts_sent :], len(alerts)
        last = self.monitor.last if self.monitor is not None else None
        self.on_progress({"step": step, "steps": self.steps, "loss": loss, "grad_norm": grad_norm,
                          "layers": dict(last.layer_grad_norms) if last is not None else {},
                          "alerts": [dataclasses.asdict(a) for a in new]})
