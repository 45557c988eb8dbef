"""What the measuring modules need of an activation, as a typing Protocol.

`properties`, `cost`, `cache` and `symbolic` read an activation; `core.Activation`
asks them for its properties and formulas. They name this protocol instead of
`Activation`, so the dependency runs one way (core -> them; import-linter's
acyclic_siblings keeps it so) while `Activation` satisfies it as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch import nn


class ActivationLike(Protocol):
    """An elementwise f with its closed-form f' (see `core.Activation` for the meaning of each field)."""

    @property
    def fn(self) -> Callable[[torch.Tensor], torch.Tensor]: ...

    @property
    def grad(self) -> Callable[[torch.Tensor], torch.Tensor]: ...

    @property
    def params(self) -> Mapping[str, float]: ...

    @property
    def formula(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def cache_key(self) -> str | None: ...

    def module(self) -> nn.Module: ...
