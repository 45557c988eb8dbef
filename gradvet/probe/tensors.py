"""The tensors in what a module takes or returns (a tensor, or tuples and lists holding them, as
LSTM's output or Hugging Face blocks' tuples): shared by the layer and the block hooks."""

from __future__ import annotations

import torch


def tensors(value) -> list[torch.Tensor]:
    """Every tensor of `value`, nested tuples and lists flattened, in order."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors(item)]
    return []


def first_tensor(value) -> torch.Tensor | None:
    """The first tensor of `value` (None when it holds none)."""
    if torch.is_tensor(value):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None
