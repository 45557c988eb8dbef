"""gradvet: see, explain and fix vanishing and exploding gradients in PyTorch networks."""

from gradvet import activations
from gradvet.activations import Activation, activation, register
from gradvet.errors import GradvetError

__version__ = "0.1.0"

__all__ = ["Activation", "GradvetError", "activation", "activations", "register", "__version__"]
