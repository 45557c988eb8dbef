import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from gradvet.integrations.transformers import GradvetCallback

model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=256, n_positions=64, bos_token_id=0,
                                   eos_token_id=0))
tokens = torch.randint(0, 256, (64, 32), generator=torch.Generator().manual_seed(0))
data = [{"input_ids": ids, "labels": ids} for ids in tokens]

callback = GradvetCallback(every=2)  # the gradients before clipping, per optimiser step
args = TrainingArguments(output_dir="out", max_steps=8, per_device_train_batch_size=8, gradient_accumulation_steps=2,
                         max_grad_norm=1.0, logging_steps=2, report_to=[], save_strategy="no", use_cpu=True)
trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
trainer.train()  # prints gradvet's diagnosis at the end; its numbers are in every log (and report_to)
for log in trainer.state.log_history[:-1]:  # the Trainer's grad_norm and gradvet's, per logged step
    print(log["step"], log["grad_norm"], callback.grad_norm(log["step"]))
