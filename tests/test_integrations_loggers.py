"""The W&B and MLflow loggers, offline: a short run's metrics are read back from what each wrote
(W&B's offline run file, MLflow's local file store) and equal the trace's numbers."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
import torch
from readme_examples import check_and_run
from torch import nn

import gradvet
from gradvet.integrations.names import GRAD_NORM, metric_key

wandb = pytest.importorskip("wandb")
mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline with its files in tmp_path; MLflow's tracking store a local folder in tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this switch
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    wandb.teardown()  # W&B reads its settings (WANDB_DIR) once per process set-up
    yield tmp_path
    wandb.teardown()
    mlflow.set_tracking_uri(None)


def wandb_records(path: Path):
    """W&B's records in an offline run file, protocol buffers in LevelDB's log format (7-byte file header,
    32 KiB blocks, each chunk a 7-byte header: checksum, length, type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, position, block, pieces = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if left < 7 or (length == 0 and kind == 0):
            position += left
            continue
        if position + 7 + length > len(data):  # a record still being written
            return
        pieces += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def wandb_history(folder: Path) -> list[dict]:
    """The history rows of the one offline run under `folder`, once W&B has written all of it (its
    service may still be writing when run.finish() returns: wait for the run's exit record)."""
    [path] = folder.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 20
    records = list(wandb_records(path))
    while not any(r.WhichOneof("record_type") == "exit" for r in records) and time.monotonic() < deadline:
        time.sleep(0.2)
        records = list(wandb_records(path))
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]


def short_run(log_to) -> gradvet.Watch:
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradvet.watch(model, optimizer, every=2, log_to=log_to) as handle:
        for _ in range(6):
            x, y = torch.randn(4, 5, generator=generator), torch.randint(0, 2, (4,), generator=generator)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    return handle


def test_wandb_offline_keeps_every_recorded_step(offline):
    run = wandb.init(project="gradvet-test", dir=str(offline))
    run.log({"my_loss": 1.0})  # the user's own metric keeps W&B's step
    handle = short_run(run)
    run.finish()
    rows = [row for row in wandb_history(offline) if "gradvet/step" in row]
    assert [row["gradvet/step"] for row in rows] == [0, 2, 4]
    for row in rows:
        step = row["gradvet/step"]
        assert row[GRAD_NORM] == pytest.approx(handle.grad_norm(step), rel=1e-6)
        assert row[metric_key("0", "weight_grad_norm")] == pytest.approx(handle.trace.at(step)["0"]["weight_grad_norm"])


def test_mlflow_file_store_keeps_every_recorded_step(offline):
    from mlflow.tracking import MlflowClient

    with mlflow.start_run() as run:
        handle = short_run("mlflow")
    client = MlflowClient((offline / "mlruns").as_uri())
    history = client.get_metric_history(run.info.run_id, GRAD_NORM)
    assert [m.step for m in history] == [0, 2, 4]
    assert [m.value for m in history] == pytest.approx([handle.grad_norm(s) for s in (0, 2, 4)], rel=1e-6)
    layer = client.get_metric_history(run.info.run_id, metric_key("2", "update_ratio"))
    assert [m.value for m in layer] == pytest.approx(handle.trace.series("2", "update_ratio")[1], rel=1e-6)


def test_wandb_needs_a_run():
    from gradvet.base.errors import GradvetError

    assert wandb.run is None
    with pytest.raises(GradvetError, match=r"wandb.init"):
        gradvet.watch(nn.Linear(2, 2), log_to="wandb")


def test_the_readme_snippet_runs_offline(offline, monkeypatch):
    check_and_run("examples/loggers.py", offline, monkeypatch)
    assert any(GRAD_NORM in row for row in wandb_history(offline))
    from mlflow.tracking import MlflowClient

    client = MlflowClient((offline / "mlruns").as_uri())
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [m.step for m in client.get_metric_history(run.info.run_id, GRAD_NORM)] == [0, 5, 10, 15]
