"""Activations recognised by their values (issue 14, item 3): a parameter-free elementwise module of
any class is matched to the catalog entry that computes the same values; a module that is not
elementwise, or not deterministic, is not; the look leaves the module and the random stream as
they were. Expected names come from the functions' definitions (x*sigmoid(x) is silu; Hugging
Face's GELUActivation is erf-GELU, NewGELUActivation the tanh approximation)."""

from __future__ import annotations

import torch
from torch import nn

from gradvet.activations.identify import identify, identify_module
from gradvet.probe.layers import catalog_activation, watched_modules


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Mean(nn.Module):
    def forward(self, x):
        return x.mean()


class Softmax(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)


class RandomDrop(nn.Module):
    """Dropout written by hand: draws from torch's global random stream."""

    def forward(self, x):
        return x * (torch.rand_like(x) > 0.5)


class Counting(nn.Module):
    """relu that counts its calls in a buffer: its state would change."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return torch.relu(x)


def test_a_users_swish_is_silu_and_watched_as_one():
    assert identify_module(Swish()).name == "silu"
    assert identify(lambda x: x * torch.sigmoid(x)).name == "silu"
    model = nn.Sequential(nn.Linear(3, 4), Swish(), nn.Linear(4, 1))
    kinds = {w.name: (w.kind, w.activation.name if w.activation else None) for w in watched_modules(model)}
    assert kinds["1"] == ("activation", "silu")


def test_hugging_face_gelu_classes():
    from transformers.activations import FastGELUActivation, GELUActivation, NewGELUActivation

    assert catalog_activation(GELUActivation()).name == "gelu"
    assert catalog_activation(NewGELUActivation()).name == "gelu_tanh"
    assert catalog_activation(FastGELUActivation()).name == "gelu_tanh"


def test_what_is_not_elementwise_is_not_an_activation():
    for module in (Mean(), Softmax(), RandomDrop(), nn.Linear(2, 2)):
        assert identify_module(module) is None, type(module).__name__
    assert identify(lambda x: torch.cumsum(x, 0)) is None
    assert identify(lambda x: x * 1.7 + 0.3) is None  # elementwise, but no catalog entry


def test_the_look_changes_no_state_and_no_random_stream():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    assert identify(RandomDrop().forward) is None  # identify itself: no cache in between
    assert torch.equal(torch.get_rng_state(), before)
    counting = Counting()
    assert identify_module(counting) is None and float(counting.calls) == 0  # changed its buffer: put back, refused
    hooked, fired = Swish(), []
    hooked.register_forward_hook(lambda *args: fired.append(1))
    hooked.__class__ = type("HookedSwish", (Swish,), {})  # a class of its own: not cached from the test above
    assert identify_module(hooked).name == "silu" and not fired  # its hooks do not fire
