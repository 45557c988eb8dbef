"""Greedy layer-wise pre-training with autoencoders, then fine-tuning
(Hinton, Osindero & Teh 2006; Bengio, Lamblin, Popovici & Larochelle 2007).

Hidden block i is trained, with the blocks below it frozen, as the encoder
of an autoencoder whose decoder is a fresh linear map back to block i's
input; the loss is the mean squared reconstruction error. The decoders are
thrown away; fine-tuning then trains the whole network on the task.
"""

from __future__ import annotations

import torch
from torch import nn

from gradvet.models.mlp import MLP
from gradvet.spec import RunSpec


def reconstruction_loss(model: MLP, layer: int, decoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MSE between block `layer`'s input and its decoded code, on `x`."""
    with torch.no_grad():
        inputs = model.features(x, upto=layer)
    code = model.hidden[layer](inputs)
    return nn.functional.mse_loss(decoder(code), inputs)


def pretrain(model: MLP, spec: RunSpec, x_train: torch.Tensor, generator: torch.Generator) -> list[dict[str, float]]:
    """Train each hidden block as an autoencoder for spec.pretrain steps; returns the
    reconstruction loss of every layer before and after (on the whole training set)."""
    from gradvet.train.optim import make_optimizer

    report = []
    was_training = model.training
    model.train()
    for layer, block in enumerate(model.hidden):
        decoder = nn.Linear(block.linear.out_features, block.linear.in_features)
        optimizer = make_optimizer(spec.replace(weight_decay=0.0), list(block.parameters()) + list(decoder.parameters()))
        with torch.no_grad():
            before = float(reconstruction_loss(model, layer, decoder, x_train))
        for _ in range(spec.pretrain):
            idx = torch.randint(0, x_train.shape[0], (spec.batch_size,), generator=generator)
            loss = reconstruction_loss(model, layer, decoder, x_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            after = float(reconstruction_loss(model, layer, decoder, x_train))
        report.append({"layer": layer, "before": before, "after": after})
    model.train(was_training)
    return report
