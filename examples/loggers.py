import mlflow
import torch
import wandb
from torch import nn

import gradvet

model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
run = wandb.init(project="gradvet-example")  # your W&B run; gradvet charts against gradvet/step
mlflow.start_run()  # your MLflow run; gradvet's metrics carry their step

with gradvet.watch(model, optimizer, every=5, log_to=["wandb", "mlflow"]):
    for _ in range(20):
        x, y = torch.randn(32, 20), torch.randint(0, 4, (32,))
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
run.finish()
mlflow.end_run()
