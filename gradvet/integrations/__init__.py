"""gradvet in one's own training loop: one line for a plain loop, a callback for a framework.

- `gradvet.watch(model, optimizer, every=..., include=..., log_to=...)` (`integrations.loop`): a plain loop;
- `gradvet.integrations.lightning.GradvetCallback`: Lightning's Trainer (extra `gradvet[lightning]`);
- `gradvet.integrations.transformers.GradvetCallback`: Hugging Face's Trainer (extra `gradvet[hf]`);
- loggers (`integrations.loggers`): TensorBoard, Weights & Biases, MLflow, or a function;
- `gradvet.save_run(...)` (`integrations.runs`): any probe's run into a runs.db store;
- DDP (`integrations.distributed`): every rank probes, rank 0 logs and saves.

Lightning, transformers, wandb and mlflow are imported only by the module that uses them.
"""

from gradvet.integrations.loop import Watch, watch
from gradvet.integrations.runs import save_run

__all__ = ["Watch", "save_run", "watch"]
