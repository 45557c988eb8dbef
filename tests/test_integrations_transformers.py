"""gradvet's Hugging Face Trainer callback: per optimiser step (gradient accumulation included) its
total gradient norm is the `grad_norm` the Trainer logs (before clipping), its numbers reach the
callbacks of report_to through the logs, and its diagnosis is there at the end."""

from __future__ import annotations

import os

import pytest
import torch
from readme_examples import check_and_run

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched: models are built from configs
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from gradvet.base.rng import seeded  # noqa: E402
from gradvet.integrations.names import GRAD_NORM  # noqa: E402
from gradvet.integrations.transformers import GradvetCallback  # noqa: E402


def tiny_gpt2():
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=16,
                                     bos_token_id=0, eos_token_id=0, initializer_range=0.2)
    with seeded(0):
        return transformers.GPT2LMHeadModel(config)


def token_data(n=32, length=16):
    ids = torch.randint(0, 64, (n, length), generator=torch.Generator().manual_seed(1))
    return [{"input_ids": row, "labels": row} for row in ids]


class Recorder(transformers.TrainerCallback):
    """What a report_to integration would receive: the logs of every on_log."""

    def __init__(self):
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def train(tmp_path, callbacks, **options):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
        per_device_train_batch_size=4, learning_rate=1e-3, seed=0,
        **{"max_steps": 6, "gradient_accumulation_steps": 2, "max_grad_norm": 1.0, "logging_steps": 1, **options})
    trainer = transformers.Trainer(model=tiny_gpt2(), args=args, train_dataset=token_data(), callbacks=callbacks)
    trainer.train()
    return trainer


def test_the_total_is_the_grad_norm_the_trainer_logs_and_reaches_report_to(tmp_path, capsys):
    recorder, callback = Recorder(), GradvetCallback(every=1)
    trainer = train(tmp_path, [recorder, callback])  # the recorder first: the callback moves ahead of it
    logged = [log for log in trainer.state.log_history if "grad_norm" in log]
    assert [log["step"] for log in logged] == list(range(1, 7)) and callback.trace.steps() == list(range(1, 7))
    assert max(log["grad_norm"] for log in logged) > 1.0  # max_grad_norm=1.0 clips these steps
    for log in logged:
        assert callback.grad_norm(log["step"]) == pytest.approx(log["grad_norm"], rel=1e-3), log["step"]
    seen = [log for log in recorder.logs if "grad_norm" in log]
    assert len(seen) == 6
    for log in seen:
        assert log[GRAD_NORM] == pytest.approx(log["grad_norm"], rel=1e-3)
        assert "gradvet/transformer.h.0.mlp.c_fc/weight_grad_norm" in log
    assert callback.diagnose().verdict in ("healthy", "vanishing", "exploding")
    out = capsys.readouterr().out
    assert "verdict:" in out  # printed when training ended
    printed = [line for line in out.splitlines() if line.startswith("{'loss'")]  # the console's log lines
    assert len(printed) == 6 and all(GRAD_NORM in line and "gradvet/transformer" not in line for line in printed)
    model = trainer.model
    assert callback.session.probe.hooks_attached == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_every_defaults_to_logging_steps_and_the_report_is_written(tmp_path):
    callback = GradvetCallback(show=False, report=tmp_path / "diagnosis.json")
    train(tmp_path, [callback], max_steps=4, gradient_accumulation_steps=1, logging_steps=2)
    assert callback.trace.steps() == [2, 4]
    import json

    assert json.loads((tmp_path / "diagnosis.json").read_text())["verdict"] == callback.diagnose().verdict


def test_the_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    check_and_run("examples/hf_trainer.py", tmp_path, monkeypatch)
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()]
    assert [int(step) for step, _, _ in lines] == [2, 4, 6, 8]
    for _, theirs, ours in lines:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-3)
