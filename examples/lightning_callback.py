import lightning.pytorch as pl
import torch
from torch import nn

from gradvet.integrations.lightning import GradvetCallback


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


x, y = torch.randn(512, 20), torch.randint(0, 4, (512,))
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)

callback = GradvetCallback(every=5)  # the gradients before clipping, once per optimiser step
trainer = pl.Trainer(max_steps=40, callbacks=[callback], gradient_clip_val=1.0, accumulate_grad_batches=2,
                     logger=pl.loggers.CSVLogger("logs"), enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(Classifier(), loader)  # prints gradvet's diagnosis at the end; gradvet/* metrics in logs/
print(callback.diagnose().verdict, callback.trace.steps())
