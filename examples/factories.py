import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel


def tiny_gpt2(n_layer=2):
    """A model alone: fed by --data (here --data tokens: random token ids)."""
    return GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_head=2, n_embd=64, vocab_size=256, n_positions=64,
                                      bos_token_id=0, eos_token_id=0))


def gpt2_with_batch(n_layer=2):
    """(model, batch): a dict batch is given as model(**batch); the loss is the output's .loss."""
    ids = torch.randint(0, 256, (8, 32))
    return tiny_gpt2(n_layer), {"input_ids": ids, "labels": ids}


def mlp_with_loss(depth=8):
    """(model, batch, loss_fn): a tensor batch is given as model(batch); the loss is loss_fn(output, batch)."""
    layers = [nn.Linear(16, 64), nn.Sigmoid()] + [m for _ in range(depth - 1) for m in (nn.Linear(64, 64), nn.Sigmoid())]
    x, y = torch.randn(128, 16), torch.randint(0, 10, (128,))
    return nn.Sequential(*layers, nn.Linear(64, 10)), x, lambda output, batch: nn.functional.cross_entropy(output, y)
