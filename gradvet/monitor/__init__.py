"""Early warning: `Monitor` reads cheap gradient signals every step and raises `Alert`s before a run is lost."""

from gradvet.monitor.alarms import Alarms
from gradvet.monitor.alert import KINDS, Alert, Finding
from gradvet.monitor.detectors import default_detectors
from gradvet.monitor.monitor import Monitor
from gradvet.monitor.signals import StepSignals

__all__ = ["KINDS", "Alarms", "Alert", "Finding", "Monitor", "StepSignals", "default_detectors"]
