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

from gradvet.base.errors import GradvetError
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


class SigmoidCrossEntropy(nn.Module):
    """Nielsen's cross-entropy cost (NNDL ch. 3): sigmoid output units a_j = sigma(z_j) and
    C = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] against the one-hot label y, averaged
    over the batch; its output error is dC/dz = a - y. Takes logits and class indices."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(target, logits.shape[1]).to(logits.dtype)
        return nn.functional.binary_cross_entropy_with_logits(logits, onehot, reduction="sum") / logits.shape[0]


def make_loss(spec: RunSpec, task: str) -> nn.Module:
    """Cross-entropy for classification, mean squared error for regression (or as the spec says)."""
    name = spec.loss
    if name == "auto":
        name = "mse" if task == "regression" else "cross_entropy"
    if name == "sigmoid_cross_entropy":
        if task == "regression":
            raise GradvetError("loss='sigmoid_cross_entropy' needs class labels; this dataset is a regression task.")
        return SigmoidCrossEntropy()
    return nn.MSELoss() if name == "mse" else nn.CrossEntropyLoss()
