"""gradvet: see, explain and fix vanishing and exploding gradients in PyTorch networks."""

from gradvet import activations
from gradvet.activations import Activation, activation, register
from gradvet.choose import Choice, choose
from gradvet.base.errors import GradvetError
from gradvet.probe import Diagnosis, Probe, Trace, diagnose

__version__ = "0.1.0"

__all__ = ["Activation", "Choice", "Diagnosis", "GradvetError", "Probe", "Trace", "activation", "activations",
           "choose", "diagnose", "register", "__version__"]
