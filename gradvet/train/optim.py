"""Optimisers and losses named by a RunSpec.

Weight decay is the optimiser's own: it adds weight_decay * w to every
gradient, i.e. the gradient of the L2 penalty (weight_decay / 2) ||w||^2
(for SGD, momentum, RMSprop and Adam alike; not AdamW's decoupled form).
Gradient clipping (`clip`, `clip_value`) acts on the loss gradient before the
optimiser step, so the decay term is added after clipping, as in any plain
PyTorch loop that calls clip_grad_norm_ and then optimizer.step().
"""

from __future__ import annotations

import torch
from torch import nn

from gradvet.spec import RunSpec


def make_optimizer(spec: RunSpec, params) -> torch.optim.Optimizer:
    params = list(params)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "momentum":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)


def make_loss(spec: RunSpec, task: str) -> nn.Module:
    """Cross-entropy for classification, mean squared error for regression (or as the spec says)."""
    name = spec.loss
    if name == "auto":
        name = "mse" if task == "regression" else "cross_entropy"
    return nn.MSELoss() if name == "mse" else nn.CrossEntropyLoss()
