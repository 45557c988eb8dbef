"""Histograms of what each activation layer outputs on one batch (saturation and dead units
seen as shapes: a sigmoid layer piled up at 0 and 1, a ReLU layer's spike at 0)."""

from __future__ import annotations

import torch
from torch import nn

from gradvet.probe.layers import catalog_activation

BINS = 40


@torch.no_grad()
def activation_histograms(model: nn.Module, x: torch.Tensor, bins: int = BINS) -> dict[str, dict[str, list]]:
    """{module name: {"edges": bins + 1 edges, "counts": bins counts}} for every module gradvet
    knows as an activation, from one forward pass on `x` in eval mode (the model's mode and
    state are left as they were; hooks removed afterwards)."""
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if name and catalog_activation(module) is not None:
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().flatten().double())))
    was_training = model.training
    model.eval()  # no batch-norm statistics updated, no dropout: the histograms change nothing
    try:
        model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    result = {}
    for name, values in outputs.items():
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            continue
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts = torch.histc(values, bins=bins, min=lo, max=hi)
        edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
        result[name] = {"edges": edges.tolist(), "counts": [int(c) for c in counts.tolist()]}
    return result
