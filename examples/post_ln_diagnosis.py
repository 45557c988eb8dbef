"""gradvet.diagnose on a Post-LN transformer encoder of 24 layers (PyTorch's nn.TransformerEncoder,
norm_first=False, random weights), at initialisation, on one batch of random tokens.

    python examples/post_ln_diagnosis.py

The probe finds the 24 nn.TransformerEncoderLayer blocks, sees that their skip passes a LayerNorm
(Post-LN), and reads the verdict off the residual stream: ||dL/dh|| at the first block over the last.
The README shows what this prints (tests/test_experiment_residual.py runs it).
"""

import torch
from torch import nn

import gradvet

torch.manual_seed(0)
vocab, d_model, layers = 100, 64, 24
layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True)
model = nn.Sequential(nn.Embedding(vocab, d_model), nn.TransformerEncoder(layer, num_layers=layers),
                      nn.Linear(d_model, vocab))
ids = torch.randint(0, vocab, (16, 32))
targets = torch.randint(0, vocab, (16, 32))
with gradvet.Probe(model) as probe:
    nn.functional.cross_entropy(model(ids).transpose(1, 2), targets).backward()
diagnosis = gradvet.diagnose(probe)
print(diagnosis)
