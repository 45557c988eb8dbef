"""A model whose linear layers hold the weights of R runs, called on the runs' stacked inputs.

`stacked_twin(model, params)` copies `model` and puts in place of each `nn.Linear` a layer
computing, per run r, x_r W_r^T + b_r with one fused `torch.baddbmm` over the stacked (R, B, n_in)
input and the stacked (R, n_out, n_in) weights of `params` (the tensors themselves, so an
in-place update of them is seen at once). Every other module runs as it is on the (R, B, ...)
tensors: activations are elementwise, and the model's own forward (blocks, residual sums) only
composes them. So the twin's output is that of `vmap(functional_call(model, params))`, and
plain autograd through it gives each run its own gradient (the runs' losses are summed, each
with gradient 1); it skips the batching machinery of torch.func and vmap's unfused bias add,
which cost about a third of a batched step of small MLPs on a CPU
(benchmarks/sweep_throughput.py).

Only models whose parameters all belong to `nn.Linear` layers (None otherwise: the caller keeps
torch.func).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class StackedLinear(nn.Module):
    """R linear layers at once: (R, B, n_in) -> (R, B, n_out), weight (R, n_out, n_in), bias (R, n_out) or None."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def stacked_twin(model: nn.Module, params: dict[str, torch.Tensor]) -> nn.Module | None:
    """A copy of `model` running R runs at once on the stacked `params` (name -> (R, ...) tensor, as
    `torch.func.stack_module_state` names them); None when some parameter is not a Linear layer's."""
    owners = {name: module for name, module in model.named_modules()}
    for name in params:
        owner = owners.get(name.rsplit(".", 1)[0] if "." in name else "")
        if not isinstance(owner, nn.Linear):
            return None
    twin = copy.deepcopy(model).to("meta")
    for name, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                full = f"{name}.{child_name}" if name else child_name
                setattr(module, child_name, StackedLinear(params[f"{full}.weight"], params.get(f"{full}.bias")))
    return twin
