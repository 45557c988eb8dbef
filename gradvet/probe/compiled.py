"""A probe on a torch.compile'd model.

`torch.compile(model)` returns a wrapper (torch._dynamo's OptimizedModule) whose modules are named
`_orig_mod.<name>`: the probe watches the original module, so layer names are the model's own.
Dynamo cannot trace the probe's hooks (they read `grad_fn`, and the probe marks them
`torch.compiler.disable`), so it breaks the graph at each call of a watched module: the hooks run
eagerly between compiled pieces. Measured on a small MLP (Linear-ReLU-Linear, torch 2.13, CPU): one
compiled graph without the probe, three with it (dynamo's counters: a graph break at each hook).
The graph is compiled with the hooks when the probe is entered before the model's first call;
dynamo does not re-check module hooks added after it compiled (its `skip_nnmodule_hook_guards`),
so a probe entered later sees no forward pass (the parameter gradients, read by tensor hooks, are
still recorded), and says so in a note.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import nn


def unwrap(model: nn.Module) -> tuple[nn.Module, bool]:
    """(the module to watch, whether `model` is a torch.compile wrapper)."""
    inner = getattr(model, "_orig_mod", None)
    if isinstance(inner, nn.Module) and type(model).__name__ == "OptimizedModule":
        return inner, True
    return model, False


def eager(fn: Callable) -> Callable:
    """`fn` run outside dynamo's tracing (a graph break where a compiled model calls it)."""
    return torch.compiler.disable(fn)


def _counters() -> tuple[int, int] | None:
    """(graph breaks, graphs compiled) so far, from torch._dynamo's counters; None without dynamo."""
    utils = sys.modules.get("torch._dynamo.utils")
    if utils is None:
        return None
    counters = utils.counters
    return sum(counters["graph_break"].values()), counters["stats"].get("unique_graphs", 0)


class GraphBreaks:
    """Dynamo's graph breaks and compiled graphs counted since the probe was entered."""

    def __init__(self) -> None:
        self.start = _counters() or (0, 0)

    def note(self) -> str:
        now = _counters() or self.start
        breaks, graphs = now[0] - self.start[0], now[1] - self.start[1]
        if breaks == 0 and graphs == 0:
            return ("torch.compile: no graph compiled and no graph break while the probe was attached (the model "
                    "was compiled before); layer names are the model's own, without '_orig_mod.'.")
        return (f"torch.compile: {breaks} graph break{'s' if breaks != 1 else ''} and {graphs} compiled "
                f"graph{'s' if graphs != 1 else ''} counted by dynamo while the probe was attached (the probe's hooks "
                "run eagerly, so the graph breaks at watched modules); layer names are the model's own, without "
                "'_orig_mod.'.")

    def unseen(self) -> str:
        return ("torch.compile: the compiled model ran without calling the probe's forward hooks (dynamo does not "
                "re-check module hooks added after it compiled); enter the Probe before the model's first call, or "
                "call torch._dynamo.reset() first. Parameter-gradient norms are recorded all the same.")
