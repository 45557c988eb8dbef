"""Recurrent sequence models stepped one time step at a time, so that the hidden
state h_t of every step is a tensor one can reach (for the gradient-through-time
profile ||dL/dh_t||) and the graph can be cut for truncated BPTT.

- rnn: Elman cell h_t = f(W_ih x_t + W_hh h_{t-1} + b) with any catalog activation f;
  dL/dh_t shrinks or grows by a factor f'(.) W_hh per step back (Bengio et al. 1994).
- lstm / gru: PyTorch's LSTMCell / GRUCell, whose additive cell path carries the
  gradient over long lags (Hochreiter & Schmidhuber 1997; Cho et al. 2014).
The read-out `out` maps the last hidden state to the prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from gradvet.activations import Activation
from gradvet.activations import activation as get_activation
from gradvet.base import validation
from gradvet.base.errors import GradvetError
from gradvet.base.rng import seeded

KINDS = ("rnn", "lstm", "gru")


class ElmanCell(nn.Module):
    """h' = f(ih(x) + hh(h)); `ih` and `hh` are ordinary Linear layers (hh without bias)."""

    def __init__(self, input_size: int, hidden_size: int, act: Activation):
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size, bias=False)
        self.act = act.module()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.ih(x) + self.hh(h))


class SequenceModel(nn.Module):
    """A recurrent cell unrolled over time and a linear read-out of the last state.

    forward(x) takes x of shape (N, T, F). With `tbptt = k` the hidden state is
    detached so that only the last k steps receive gradient (k-truncated BPTT).
    With `keep_states = True` the states h_0..h_T are kept in `states` with
    `retain_grad()`, so after backward `states[t].grad` is dL/dh_t.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, out_features: int,
                 act: Activation | None = None):
        super().__init__()
        validation.choice("recurrent model kind", kind, KINDS)
        self.kind = kind
        self.hidden_size = hidden_size
        self.cell: nn.Module
        if kind == "rnn":
            self.cell = ElmanCell(input_size, hidden_size, act or get_activation("tanh"))
        elif kind == "lstm":
            self.cell = nn.LSTMCell(input_size, hidden_size)
        else:
            self.cell = nn.GRUCell(input_size, hidden_size)
        self.out = nn.Linear(hidden_size, out_features)
        self.tbptt: int | None = None
        self.keep_states = False
        self.states: list[torch.Tensor] = []

    def step(self, x_t: torch.Tensor, state):
        """One time step: returns the new state (h, or (h, c) for LSTM)."""
        return self.cell(x_t, state)

    @staticmethod
    def hidden(state) -> torch.Tensor:
        return state[0] if isinstance(state, tuple) else state

    def initial_state(self, batch: int, like: torch.Tensor):
        h = like.new_zeros(batch, self.hidden_size)
        return (h, h.clone()) if self.kind == "lstm" else h

    def run_from(self, x: torch.Tensor, state, start: int):
        """Unroll from time `start` (0-based index into x's steps) with `state` as h_start."""
        steps = x.shape[1]
        for t in range(start, steps):
            if self.tbptt is not None and steps - t == self.tbptt and t > 0:
                state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            state = self.step(x[:, t], state)
            if self.keep_states:
                h = self.hidden(state)
                h.retain_grad()
                self.states.append(h)
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise GradvetError(f"a sequence model needs input of shape (N, T, F); got {tuple(x.shape)}.")
        self.states = []
        state = self.initial_state(x.shape[0], x)
        state = self.run_from(x, state, 0)
        return self.out(self.hidden(state))


def rnn(kind: str, input_size: int, out_features: int, hidden_size: int = 64,
        activation: str | Activation = "tanh", init: str = "default", seed: int | None = None,
        **activation_params) -> SequenceModel:
    """An initialised sequence model (`kind` rnn, lstm or gru). With a `seed` the weights come from
    torch's global generator seeded with it, which is then put back as it was
    (`gradvet.base.rng.seeded`); without one they are drawn from the caller's stream."""
    from gradvet.models.init import initialise

    act = get_activation(activation, **activation_params) if kind == "rnn" else None
    with seeded(seed):
        model = SequenceModel(kind, input_size, hidden_size, out_features, act)
        if init == "lsuv":
            raise GradvetError("init='lsuv' is for MLPs; for recurrent models use orthogonal, xavier, he, lecun or default.")
        initialise(model, init, activation=act or get_activation("tanh"))
    return model
