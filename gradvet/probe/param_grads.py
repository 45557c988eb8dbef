"""||p.grad|| of every watched parameter, read when backward has accumulated it.

A post-accumulate-grad hook (`Tensor.register_post_accumulate_grad_hook`) marks each parameter as
autograd finishes accumulating its gradient; at the end of that backward pass (a callback queued on
autograd's engine) the marked gradients' norms are taken in one `torch._foreach_norm` and kept as
0-d tensors, replacing the ones of an earlier backward pass. So the norms are those of the
gradient before any clipping (clip_grad_norm_ runs after backward), and with gradient
accumulation those of the gradient summed over the micro-batches so far: the latest value is the
one the optimiser steps with, before clipping. Under DistributedDataParallel the reading is queued
behind DDP's own end-of-backward callback, so it sees the averaged gradient. Nothing else is kept: p.grad is autograd's own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gradvet.probe.metrics.layer_step import norm_of

Store = Callable[[int, torch.Tensor], None]  # (parameter index, ||p.grad||) -> None


def _queue_callback(fn: Callable[[], None]) -> bool:
    """Run `fn` when the running backward pass ends; False where that cannot be arranged."""
    try:
        torch.autograd.Variable._execution_engine.queue_callback(fn)
    except (AttributeError, RuntimeError):
        return False
    return True


class ParamGradReader:
    """Hooks on `params`; `store(i, norm)` receives ||params[i].grad|| after each backward pass that
    accumulated it."""

    def __init__(self, params: list[torch.Tensor], store: Store):
        self.params = params
        self.store = store
        self._handles: list = []
        self._marked: list[int] = []
        self.on_backward: Callable[[], None] | None = None  # called on the first hook of each backward pass
        self.read_norms = True  # False: only tell `on_backward` (a backward pass ran), take no norm

    @property
    def hooks(self) -> int:
        """How many hooks are attached."""
        return len(self._handles)

    def attach(self) -> None:
        if self._handles:
            return
        self._handles = [p.register_post_accumulate_grad_hook(self._hook(i))
                         for i, p in enumerate(self.params) if p.requires_grad]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._marked = []

    def _hook(self, index: int):
        def hook(p: torch.Tensor) -> None:
            if not self._marked:
                if self.on_backward is not None:
                    self.on_backward()
                if not _queue_callback(self._flush_last):
                    self._marked.append(index)
                    self.flush()
                    return
            self._marked.append(index)

        return hook

    def _flush_last(self) -> None:
        """Queue `flush` once more at the end of backward: it then runs after every callback queued
        during the backward pass, DistributedDataParallel's gradient averaging among them (so the
        norms are those of the all-reduced gradient the optimiser steps with)."""
        if not _queue_callback(self.flush):
            self.flush()

    def flush(self) -> None:
        """The norms of the marked gradients, in one foreach call where they are all float32/64 dense."""
        marked, self._marked = self._marked, []
        if not self.read_norms:
            return
        grads = [(i, self.params[i].grad) for i in marked if self.params[i].grad is not None]
        if not grads:
            return
        with torch.no_grad():
            plain = [(i, g) for i, g in grads if g.layout == torch.strided and g.dtype in (torch.float32, torch.float64)]
            if plain:
                for (i, _), n in zip(plain, torch._foreach_norm([g.detach() for _, g in plain])):
                    self.store(i, n)
            for i, g in grads:
                if g.layout != torch.strided:
                    self.store(i, norm_of(g.coalesce().values()) if g.is_sparse else norm_of(g.to_dense()))
                elif g.dtype not in (torch.float32, torch.float64):
                    self.store(i, norm_of(g.detach()))
