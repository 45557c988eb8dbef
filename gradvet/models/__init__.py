"""Model builders: MLPs with every remedy as a switch, and recurrent sequence models."""

from gradvet.models.build import build
from gradvet.models.init import SCHEMES, initialise, lsuv
from gradvet.models.mlp import MLP, HiddenBlock, mlp
from gradvet.models.rnn import SequenceModel, rnn

__all__ = ["MLP", "SCHEMES", "HiddenBlock", "SequenceModel", "build", "initialise", "lsuv", "mlp", "rnn"]
