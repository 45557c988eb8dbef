"""Gradient norms read once per backward pass, before anything (clipping) can change them.

Each trainable parameter gets a post-accumulate-grad hook (torch >= 2.1); the
first one to fire in a backward pass queues a callback on the autograd engine
(`Variable._execution_engine.queue_callback`, the mechanism DDP and FSDP use),
which runs once that backward pass has finished accumulating every gradient (queued a second
time from there, so that it follows DDP's own end-of-backward averaging).
The callback takes ONE fused norm over all the gradients (`torch._foreach_norm`),
kept on the device: no host copy until the step ends. Gradient accumulation
(k backward passes before one optimiser step) simply overwrites the previous
pass's norms with those of the accumulated gradients; clipping, which comes
after the last backward pass, is never seen.

A float32 norm overflows once sum g^2 exceeds 3.4e38 (||g|| > 1.8e19, finite
gradients); on the CPU, where reading one flag costs nothing, a non-finite
norm is recomputed in float64 so that a huge gradient is told apart from a NaN
or Inf in it. On accelerators the overflowed norm stays Inf (no host sync per
backward pass).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ROOT = "(model)"  # the layer name of parameters registered on the model itself


def layer_of(parameter_name: str) -> str:
    """The module owning a parameter: 'hidden.0.linear.weight' -> 'hidden.0.linear'."""
    module, dot, _ = parameter_name.rpartition(".")
    return module if dot else ROOT


class GradientNorms:
    """Per-parameter gradient norms at the end of each backward pass, and the layer of each parameter."""

    def __init__(self, model: nn.Module):
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.layers: list[str] = list(dict.fromkeys(layer_of(name) for name, _ in named))
        position = {layer: i for i, layer in enumerate(self.layers)}
        self.layer_index = [position[layer_of(name)] for name, _ in named]
        self.passes = 0  # backward passes since the last take()
        self.loss_scale: Callable[[], float] | None = None  # the GradScaler's scale, read at each pass's end
        self.pending_scale = 1.0  # the loss scale of the latest pass
        self._handles: list = []
        self._queued = False
        self._pending: tuple[list[int], torch.Tensor] | None = None

    def attach(self) -> None:
        self._handles = [p.register_post_accumulate_grad_hook(self._on_accumulated) for p in self.params]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._queued = False

    @property
    def hooks_attached(self) -> int:
        return len(self._handles)

    def _on_accumulated(self, _param: torch.Tensor) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._after_other_callbacks)

    def _after_other_callbacks(self) -> None:
        """Queue the reading once more: it then runs after every callback queued during the backward
        pass, DistributedDataParallel's gradient averaging among them (the optimiser's gradient)."""
        torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)

    def _on_backward_end(self) -> None:
        self._queued = False
        present = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not present:
            return
        grads = [self.params[i].grad for i in present]
        if any(g.requires_grad for g in grads):  # backward(create_graph=True): read the values only
            grads = [g.detach() for g in grads]
        with torch.no_grad():
            self._pending = (present, fused_norms(grads))
        self.pending_scale = float(self.loss_scale()) if self.loss_scale is not None else 1.0
        self.passes += 1

    def take(self) -> tuple[list[int], torch.Tensor | None, int]:
        """(indices of the parameters that had a gradient, their norms as one 1-d tensor or None,
        backward passes) for the step that ends now; resets for the next step."""
        present, norms = self._pending if self._pending is not None else ([], None)
        passes = self.passes
        self._pending, self.passes = None, 0
        return present, norms, passes


def fused_norms(grads: list[torch.Tensor]) -> torch.Tensor:
    """||g|| of each tensor as one 1-d tensor on the first tensor's device, by one fused
    `torch._foreach_norm` (sparse gradients separately); float32 overflow rechecked on the CPU."""
    dense = [g for g in grads if not g.is_sparse]
    norms = list(torch._foreach_norm(dense)) if dense else []
    if len(dense) < len(grads):  # sparse gradients (nn.Embedding(sparse=True)): the norm of their values
        it = iter(norms)
        norms = [torch.linalg.vector_norm(g.coalesce().values()) if g.is_sparse else next(it) for g in grads]
    device, dtype = norms[0].device, norms[0].dtype
    if any(n.device != device or n.dtype != dtype for n in norms):
        dtype = torch.float64 if any(n.dtype == torch.float64 for n in norms) else torch.float32
        norms = [n.to(device=device, dtype=dtype) for n in norms]
    stacked = torch.stack(norms)
    if device.type == "cpu" and dtype != torch.float64 and not bool(torch.isfinite(stacked).all()):
        stacked = torch.stack([torch.linalg.vector_norm(g.coalesce().values() if g.is_sparse else g,
                                                        dtype=torch.float64) for g in grads])
    return stacked
