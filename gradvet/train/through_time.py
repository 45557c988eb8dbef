"""The gradient-through-time profile of a recurrent model: ||dL/dh_t|| for t = 1..T.

In a vanilla RNN dL/dh_t = dL/dh_T prod_{s>t} diag(f'(a_s)) W_hh, so the
profile decays (or grows) geometrically going back in time (Bengio, Simard &
Frasconi 1994; Pascanu, Mikolov & Bengio 2013); an LSTM's cell path keeps it.
"""

from __future__ import annotations

import torch
from torch import nn

from gradvet.models.rnn import SequenceModel


def gradient_through_time(model: SequenceModel, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Norm of dL/dh_t for every time step t = 1..T (index 0 is the first step's state).

    The states are kept with retain_grad during one forward/backward pass; the
    model's parameters get no gradient from this (it uses autograd.grad).
    """
    was_keeping = model.keep_states
    model.keep_states = True
    try:
        out = model(x)
        loss = loss_fn(out, y)
        states = model.states
        grads = torch.autograd.grad(loss, states, allow_unused=True)
    finally:
        model.keep_states = was_keeping
        model.states = []
    return [0.0 if g is None else float(g.double().norm()) for g in grads]  # float64: tiny entries do not underflow
