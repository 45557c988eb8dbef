"""Gradient-flow probe for any nn.Module: `Probe` -> `Trace` -> `diagnose` -> `Diagnosis`."""

from gradvet.probe.layers import Watched, watched_modules
from gradvet.probe.probe import Probe
from gradvet.probe.trace import Trace

__all__ = ["Probe", "Trace", "Watched", "watched_modules"]

from gradvet.probe.diagnosis import Diagnosis, LayerReport, Remedy, diagnose  # noqa: E402

__all__ += ["Diagnosis", "LayerReport", "Remedy", "diagnose"]
