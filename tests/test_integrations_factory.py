"""`gradvet diagnose --model pkg.mod:factory [--model-arg K=V]...` on any model: a factory's model with
its own batch (and loss), a language model on random tokens, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import shlex
import textwrap

import pytest
import torch
from cli_helpers import assert_user_error
from readme_examples import ROOT
from typer.testing import CliRunner

from gradvet.base.rng import seeded
from gradvet.cli import app

transformers = pytest.importorskip("transformers")
runner = CliRunner()

FACTORIES = """
    import torch
    from torch import nn
    from transformers import GPT2Config, GPT2LMHeadModel

    def gpt2(n_layer=2):
        config = GPT2Config(n_layer=n_layer, n_head=2, n_embd=32, vocab_size=64, n_positions=16, bos_token_id=0,
                            eos_token_id=0)
        return GPT2LMHeadModel(config)

    def gpt2_batch(n_layer=2):
        ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
        return gpt2(n_layer), {"input_ids": ids, "labels": ids}

    def mlp_batch(depth=4):
        layers = [nn.Linear(6, 24), nn.Tanh()] + [m for _ in range(depth - 1) for m in (nn.Linear(24, 24), nn.Tanh())]
        generator = torch.Generator().manual_seed(1)
        x, y = torch.randn(32, 6, generator=generator), torch.randint(0, 3, (32,), generator=generator)
        return nn.Sequential(*layers, nn.Linear(24, 3)), x, lambda output, batch: nn.functional.cross_entropy(output, y)

    def raises():
        raise RuntimeError("out of cheese")

    def no_loss():
        return nn.Linear(4, 3), torch.randn(8, 4)

    def wrong_batch():
        return nn.Linear(4, 3), {"x": torch.randn(8, 4)}

    def three_items():
        return nn.Linear(4, 3), torch.randn(8, 4), "mse", 4

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.mid, self.out = nn.Embedding(50, 16), nn.Linear(16, 16), nn.Linear(16, 50)

        def forward(self, ids):
            return self.out(torch.tanh(self.mid(self.emb(ids))))
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "userfactories.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    yield
    sys.modules.pop("userfactories", None)


def diagnose(*args):
    return runner.invoke(app, ["diagnose", *args])


def test_a_language_model_with_its_own_batch_gets_a_verdict(factories):
    result = diagnose("--model", "userfactories:gpt2_batch", "--model-arg", "n_layer=3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] in ("healthy", "vanishing", "exploding") and data["data"] == "batch"
    names = [layer["name"] for layer in data["layers"]]
    assert "transformer.h.2.mlp.c_fc" in names and "transformer.h.3.mlp.c_fc" not in names  # n_layer=3 reached it


def test_the_batch_and_loss_fn_are_used_as_given(factories):
    """The diagnosis' backward signal at the first layer equals dL/dz computed by autograd in float64 on the
    same model, batch and loss (the factory called under the command's seed)."""
    result = diagnose("--model", "userfactories:mlp_batch", "--model-arg", "depth=5", "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["layers"][0]
    import userfactories

    with seeded(3):
        model, x, loss_fn = userfactories.mlp_batch(depth=5)
    model = model.double()
    z = model[0](x.double())
    z.retain_grad()
    loss_fn(model[1:](z), x).backward()
    assert first["name"] == "0" and first["delta"] == pytest.approx(torch.linalg.vector_norm(z.grad).item(), rel=1e-4)


def test_random_tokens_feed_a_language_model(factories):
    for target in ("userfactories:gpt2", "userfactories:TinyLM"):
        result = diagnose("--model", target, "--data", "tokens", "--batch-size", "8", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["data"] == "tokens" and "random token ids" in data["fed"] and data["verdict"]


def test_every_failure_is_one_line_and_exit_2(factories):
    assert_user_error(diagnose("--model", "userfactories:raises"), "raises() raised RuntimeError: out of cheese")
    assert_user_error(diagnose("--model", "userfactories:no_loss"), "has no loss", "(model, batch, loss_fn)")
    assert_user_error(diagnose("--model", "userfactories:wrong_batch"), "the model raised TypeError",
                      "model(**batch) with keys x")
    assert_user_error(diagnose("--model", "userfactories:three_items"), "a tuple of 4 items")
    assert_user_error(diagnose("--model", "userfactories:gpt2", "--model-arg", "depth=3"), "depth")
    assert_user_error(diagnose("--model", "userfactories:gpt2", "--model-arg", "3"), "KEY=VALUE")
    assert_user_error(diagnose("--model", "userfactories:gpt2_batch", "--data", "digits"), "its own batch")
    assert_user_error(diagnose("--model", "nosuchmodule_x:f"), "cannot import module")
    assert_user_error(diagnose("--data", "tokens"), "--model package.module:factory")
    assert_user_error(diagnose("--model-arg", "a=1"), "--model-arg")
    assert_user_error(diagnose("--model", "userfactories:mlp_batch", "--data", "tokens"), "--data tokens")


def test_a_module_that_fails_as_it_loads_is_one_line_and_exit_2(factories, tmp_path):
    (tmp_path / "broken_syntax.py").write_text("def f(:\n")
    (tmp_path / "broken_import.py").write_text("raise RuntimeError('no cheese here')\n")
    assert_user_error(diagnose("--model", "broken_syntax:f"), "importing module 'broken_syntax' raised SyntaxError")
    assert_user_error(diagnose("--model", "broken_import:f"), "raised RuntimeError: no cheese here")


def test_the_readme_commands_run(monkeypatch):
    readme = (ROOT / "README.md").read_text()
    commands = [line[len("$ gradvet "):] for line in readme.splitlines() if line.startswith("$ gradvet diagnose --model")]
    assert len(commands) == 3
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    for command in commands:
        result = runner.invoke(app, shlex.split(command) + ([] if "--json" in command else ["--json"]))
        assert result.exit_code == 0, (command, result.output)
        assert json.loads(result.stdout)["verdict"] in ("healthy", "vanishing", "exploding")
