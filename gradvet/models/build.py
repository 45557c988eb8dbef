"""Build the model a RunSpec describes, for a given dataset."""

from __future__ import annotations

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.spec import RunSpec


def build(spec: RunSpec, n_features: int, n_outputs: int, sequence: bool,
          sample: torch.Tensor | None = None) -> nn.Module:
    """The initialised model for `spec`: an MLP for flat data, an rnn/lstm/gru for sequences.

    The weights come from torch's global generator seeded with spec.seed, so the same spec
    gives the same weights; the caller's random stream is left as it was (the builders'
    `seed`, see `gradvet.base.rng.seeded`). `sample` is the data batch LSUV initialisation needs.
    """
    from gradvet.models.mlp import mlp
    from gradvet.models.rnn import rnn

    params = dict(spec.activation_params)
    if spec.model == "mlp":
        if sequence:
            raise GradvetError(f"data {spec.data!r} is a sequence task; use model = rnn, lstm or gru.")
        return mlp(n_features, n_outputs, spec.depth, spec.width, spec.activation, spec.init, spec.norm,
                   spec.residual, data=sample, seed=spec.seed, **params)
    if not sequence:
        raise GradvetError(f"model {spec.model!r} needs a sequence task (adding, memory); data {spec.data!r} is not one.")
    return rnn(spec.model, n_features, n_outputs, spec.width, spec.activation, spec.init, seed=spec.seed, **params)
