import torch
from torch import nn

import gradvet

model = nn.Sequential(nn.Linear(20, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
x, y = torch.randn(512, 20), torch.randint(0, 4, (512,))


def show(metrics, step):  # any logger: 'tensorboard', 'wandb', 'mlflow', or a function like this one
    print(f"step {step}: gradient norm {metrics['gradvet/grad_norm']:.4f}")


with gradvet.watch(model, optimizer, every=20, log_to=show) as handle:  # removes its hooks at the end
    for _ in range(100):
        batch = torch.randint(0, 512, (64,))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # gradvet reads the gradients before clipping
        optimizer.step()
        optimizer.zero_grad()
        handle.step(loss)  # keeps the loss for the run's history; the optimiser's step ends the step
print(handle.diagnose())
handle.save("runs.db", name="plain loop")  # then: gradvet runs; gradvet report runs.db
