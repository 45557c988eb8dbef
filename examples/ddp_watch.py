import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import gradvet

dist.init_process_group("gloo")  # torchrun gives each process its rank, the world size and the address
rank = dist.get_rank()
model = DistributedDataParallel(nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 4)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
handle = gradvet.watch(model, optimizer, every=5)  # every rank probes; rank 0 alone logs and saves

data = torch.Generator().manual_seed(rank)  # each rank its own share of the data
for _ in range(20):
    x, y = torch.randn(32, 20, generator=data), torch.randint(0, 4, (32,), generator=data)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()  # DDP averages the gradients over the ranks here
    optimizer.step()
    optimizer.zero_grad()
    handle.step(loss)
handle.close()
key = handle.save("runs.db", name="ddp example")  # None on rank 1
if rank == 0:
    print(handle.diagnose().verdict, handle.trace.steps(), key)
dist.destroy_process_group()
