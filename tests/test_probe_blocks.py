"""Blocks and the residual stream (issue 14, item 1): the probe finds a model's repeated blocks and
records stream_grad_norm, block_gain, stream_std and branch_ratio per block; a residual net's
verdict, cause and remedies speak in blocks. Each number is checked against autograd on the block
outputs (retain_grad, in a separate pass without the probe) or a hand computation."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import gradvet
from gradvet import GradvetError, Probe
from gradvet.models import mlp
from gradvet.probe.blocks import find_blocks

BLOCK_METRICS = ("stream_grad_norm", "block_gain", "stream_std", "branch_ratio")


class ResidualBlock(nn.Module):
    """x + W2 relu(W1 x), He-initialised branch with its last layer scaled by `scale` (0: zero-init)."""

    def __init__(self, width: int, scale: float):
        super().__init__()
        self.l1, self.l2 = nn.Linear(width, width), nn.Linear(width, width)
        nn.init.kaiming_normal_(self.l1.weight)
        nn.init.kaiming_normal_(self.l2.weight)
        with torch.no_grad():
            self.l2.weight.mul_(scale)
            self.l2.bias.mul_(scale)

    def forward(self, x):
        return x + self.l2(torch.relu(self.l1(x)))


def residual_mlp(scale: float, blocks: int = 50, width: int = 16) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, width), *[ResidualBlock(width, scale) for _ in range(blocks)],
                         nn.Linear(width, 1)).double()


def autograd_blocks(model: nn.Sequential, x: torch.Tensor):
    """Per block (by its name in the Sequential): its input and output with their gradients, by a plain
    forward pass through the Sequential's items and autograd (retain_grad)."""
    h, seen = x, {}
    for i, item in enumerate(model):
        if isinstance(item, ResidualBlock):
            h_in = h
            h = item(h)
            h_in.retain_grad()
            h.retain_grad()
            seen[str(i)] = (h_in, h)
        else:
            h = item(h)
    h.pow(2).mean().backward()
    return seen


def probed(model: nn.Module, x: torch.Tensor, **options):
    with Probe(model, **options) as probe:
        model(x).pow(2).mean().backward()
    model.zero_grad()
    return probe


def no_unknowns(d) -> None:
    """No '?' and no 'nan' in the cause, notes or remedies, printed or in the JSON."""
    record = d.to_dict()
    texts = [d.cause, *d.notes, *(f"{r.action} {r.why}" for r in d.remedies), str(d),
             json.dumps([record["cause"], record["notes"], record["remedies"]])]
    for text in texts:
        assert "?" not in text and "nan" not in text.lower(), text


@pytest.mark.parametrize(("scale", "verdict"), [(1.0, "exploding"), (1 / math.sqrt(50), "healthy"), (0.0, "healthy")])
def test_residual_mlp_of_50_blocks(scale, verdict):
    model = residual_mlp(scale)
    x = torch.randn(32, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = autograd_blocks(model, x)
    model.zero_grad()
    probe = probed(model, x)
    at = probe.trace.at(0)
    assert [name for name, row in at.items() if "stream_grad_norm" in row] == [str(i) for i in range(1, 51)]
    for name, (h_in, h) in expected.items():
        row = at[name]
        assert row["stream_grad_norm"] == pytest.approx(float(h.grad.norm()), rel=1e-6)
        assert row["block_gain"] == pytest.approx(float(h_in.grad.norm() / h.grad.norm()), rel=1e-6)
        assert row["branch_ratio"] == pytest.approx(float((h - h_in).detach().norm() / h_in.detach().norm()), rel=1e-6, abs=1e-12)
        assert row["stream_std"] == pytest.approx(float(h.detach().std()), rel=1e-6)
    d = gradvet.diagnose(probe)
    first, last = expected["1"][1].grad.norm(), expected["50"][1].grad.norm()
    assert d.basis == "blocks" and d.verdict == verdict
    assert d.ratio == pytest.approx(float(first / last), rel=1e-6)
    assert [b.name for b in d.blocks] == [str(i) for i in range(1, 51)] and d.stream.blocks == 50
    assert d.stream.normalisation == "none"
    no_unknowns(d)
    record = d.to_dict()
    assert record["basis"] == "blocks" and len(record["blocks"]) == 50
    assert record["stream"]["gain_per_block"] == pytest.approx(d.stream.gain_per_block)
    actions = " ".join(r.action for r in d.remedies)
    assert "LSTM" not in actions
    if verdict == "exploding":
        assert "1/sqrt(L)" in actions and "zero" in actions and "Pre-LN" in actions
    if scale == 0:
        assert d.stream.branch_ratio_mean == 0 and all("identity" in b.flags for b in d.blocks)


def test_the_probe_changes_nothing_and_keeps_only_0d_tensors():
    model, x = residual_mlp(1.0, blocks=6), torch.randn(16, 8, dtype=torch.float64)
    out = model(x)
    out.pow(2).mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with Probe(model) as probe:
        probed_out = model(x)
        probed_out.pow(2).mean().backward()
        kept = [t for st in probe._blocks._state.values() for ts in st.kept.values() for t in ts]
        assert kept and all(t.dim() == 0 for t in kept)
    assert torch.equal(out, probed_out)
    assert all(torch.equal(a, p.grad) for a, p in zip(plain, model.parameters()))
    assert probe.hooks_attached == 0


def test_a_block_called_twice_combines_its_calls():
    torch.manual_seed(0)
    block = ResidualBlock(6, 0.5).double()
    model = nn.Sequential(nn.Linear(4, 6), block, ResidualBlock(6, 0.5), nn.Linear(6, 1)).double()

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            h = model[0](x)
            a = block(h)
            b = block(a)  # the same block again
            return model[3](model[2](b))

    twice, x = Twice(), torch.randn(5, 4, dtype=torch.float64)
    h = model[0](x)
    a = block(h)
    b = block(a)
    a.retain_grad()
    b.retain_grad()
    h.retain_grad()
    model[3](model[2](b)).pow(2).mean().backward()
    twice.zero_grad()
    probe = probed(twice, x, blocks=["net.1", "net.2"])
    row = probe.trace.at(0)["net.1"]
    grads = math.hypot(float(a.grad.norm()), float(b.grad.norm()))
    assert row["stream_grad_norm"] == pytest.approx(grads, rel=1e-9)
    assert row["block_gain"] == pytest.approx(math.hypot(float(h.grad.norm()), float(a.grad.norm())) / grads, rel=1e-9)
    h, a, b = h.detach(), a.detach(), b.detach()
    assert row["stream_std"] == pytest.approx(float(torch.cat([a.flatten(), b.flatten()]).std()), rel=1e-9)
    change = math.hypot(float((a - h).norm()), float((b - a).norm())) / math.hypot(float(h.norm()), float(a.norm()))
    assert row["branch_ratio"] == pytest.approx(change, rel=1e-9)


def small_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=32, vocab_size=50, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def block_outputs(model: nn.Module, names: list[str], loss_of):
    """dL/d(block output) per block, by autograd (retain_grad on each block's first output tensor)."""
    outs, handles = {}, []
    for name in names:
        def keep(module, args, output, name=name):
            h = output[0] if isinstance(output, tuple) else output
            h.retain_grad()
            outs[name] = h
        handles.append(model.get_submodule(name).register_forward_hook(keep))
    loss_of(model).backward()
    for handle in handles:
        handle.remove()
    model.zero_grad()
    return {name: float(h.grad.norm()) for name, h in outs.items()}


def test_gpt2_from_a_config():
    from gradvet.probe.layers import watched_modules

    model = small_gpt2()
    ids = torch.randint(0, 50, (4, 16), generator=torch.Generator().manual_seed(2))
    blocks = [f"transformer.h.{i}" for i in range(3)]
    assert [name for name, _ in find_blocks(model)] == blocks
    acts = {w.name: w.activation.name for w in watched_modules(model) if w.kind == "activation"}
    assert acts == {f"transformer.h.{i}.mlp.act": "gelu_tanh" for i in range(3)}  # NewGELUActivation, by its values
    expected = block_outputs(model, blocks, lambda m: m(ids, labels=ids).loss)
    with Probe(model) as probe:
        model(ids, labels=ids).loss.backward()
    at = probe.trace.at(0)
    for name in blocks:
        assert at[name]["stream_grad_norm"] == pytest.approx(expected[name], rel=1e-4)
        assert set(BLOCK_METRICS) <= set(at[name])
    assert "transformer.h.0.mlp.act" in at and "saturated_fraction" in at["transformer.h.0.mlp.act"]
    d = gradvet.diagnose(probe)
    assert d.basis == "blocks" and d.stream.normalisation == "pre" and d.stream.norm_class == "LayerNorm"
    assert d.ratio == pytest.approx(expected[blocks[0]] / expected[blocks[-1]], rel=1e-4)
    assert "weight factors" not in d.cause and "activation derivative" not in d.cause  # no 4.1e-113 of layers
    no_unknowns(d)


def test_bert_is_judged_on_its_blocks_not_the_pooler():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                        vocab_size=50, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config)
    ids, labels = torch.randint(0, 50, (4, 12), generator=torch.Generator().manual_seed(3)), torch.tensor([0, 1, 0, 1])
    blocks = [f"bert.encoder.layer.{i}" for i in range(3)]
    expected = block_outputs(model, blocks, lambda m: m(ids, labels=labels).loss)
    with Probe(model) as probe:
        model(ids, labels=labels).loss.backward()
    d = gradvet.diagnose(probe)
    assert [b.name for b in d.blocks] == blocks and d.basis == "blocks"
    assert d.ratio == pytest.approx(expected[blocks[0]] / expected[blocks[-1]], rel=1e-4)
    assert "pooler" not in d.cause and d.stream.normalisation == "post"
    no_unknowns(d)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_post_and_pre_ln(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    model = nn.Sequential(nn.Linear(8, 16), nn.TransformerEncoder(layer, 4, enable_nested_tensor=False))
    probe = probed(model, torch.randn(3, 5, 8))
    blocks = [f"1.layers.{i}" for i in range(4)]
    at = probe.trace.at(0)
    for name in blocks:
        assert set(BLOCK_METRICS) <= set(at[name]), name
    d = gradvet.diagnose(probe)
    assert [b.name for b in d.blocks] == blocks
    assert d.stream.normalisation == ("pre" if norm_first else "post")
    no_unknowns(d)


class BasicBlock(nn.Module):
    """ResNet's basic block without torchvision: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + x)


def test_resnet_style_basic_blocks_with_raw_input():
    torch.manual_seed(0)
    model = nn.Sequential(*[BasicBlock(4) for _ in range(3)], nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    probe = probed(model, torch.randn(5, 4, 6, 6))  # the first block's input needs no gradient
    at = probe.trace.at(0)
    for name in ("0", "1", "2"):
        assert {"stream_grad_norm", "stream_std", "branch_ratio"} <= set(at[name])
    assert "block_gain" not in at["0"] and "block_gain" in at["1"]  # no gradient at the model's input
    d = gradvet.diagnose(probe)
    assert d.basis == "blocks" and d.stream.normalisation == "inside"
    assert any("block_gain was measured at 2 of 3 blocks" in note for note in d.notes)
    no_unknowns(d)


def test_plain_blocks_are_not_a_residual_stream():
    """gradvet's own MLP blocks (linear -> activation, no skip) record nothing and keep the layer verdict;
    with residual=True they are a stream."""
    x = torch.randn(16, 6)
    plain = probed(mlp(6, 2, depth=4, width=8, seed=0), x)
    assert not {"stream_grad_norm", "branch_ratio"} & set(plain.trace.metrics())
    assert gradvet.diagnose(plain).basis == "layers"
    residual = probed(mlp(6, 2, depth=4, width=8, residual=True, seed=0), x)
    d = gradvet.diagnose(residual)
    assert d.basis == "blocks" and [b.name for b in d.blocks] == [f"hidden.{i}" for i in range(4)]
    trace = gradvet.Trace.from_json(residual.trace.to_json())  # read back without the probe
    assert trace.kinds["hidden.0"] == "block" and trace.kinds["hidden.0.linear"] == "weight"
    back = gradvet.diagnose(trace)
    assert back.basis == "blocks" and back.ratio == pytest.approx(d.ratio) and back.cause == d.cause


def test_choosing_the_blocks():
    model, x = residual_mlp(0.5, blocks=3), torch.randn(4, 8, dtype=torch.float64)
    assert "stream_grad_norm" not in probed(model, x, blocks=False).trace.metrics()
    named = probed(model, x, blocks=["1", "3"]).trace.at(0)
    assert [n for n, row in named.items() if "stream_grad_norm" in row] == ["1", "3"]
    with pytest.raises(GradvetError, match="block"):
        Probe(model, blocks=["nope"]).__enter__()


def test_the_readme_example_prints_as_shown():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- blocks example -->\n```python\n(.*?)```", readme, re.S).group(1)
    shown = re.search(r"<!-- blocks example output -->\n```text\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)
    printed, expected = str(namespace["diagnosis"]).splitlines(), shown.splitlines()
    assert len(printed) == len(expected) and printed[0].split("(")[0] == expected[0].split("(")[0]
    assert [line.split()[0] for line in printed[2:7]] == [line.split()[0] for line in expected[2:7]]  # the blocks
    assert all(line.split(":")[0] == shown_line.split(":")[0] for line, shown_line in zip(printed, expected))


def test_every_view_shows_the_blocks():
    import io

    from rich.console import Console

    from gradvet.report import build_page
    from gradvet.report.diagnosis_view import render, render_html

    d = gradvet.diagnose(probed(residual_mlp(1.0, blocks=4), torch.randn(8, 8, dtype=torch.float64)))
    console = Console(file=io.StringIO(), width=200)
    console.print(render(d))
    for view in (console.file.getvalue(), render_html(d), str(d)):
        assert "residual stream" in view and all(b.name in view for b in d.blocks)
        assert "||dL/dh||" in view
    record = {**d.to_dict(), "model": "residual MLP", "data": "random", "steps": 0}
    page = build_page(records=[json.loads(json.dumps(record))]).render()
    assert "per block, on the residual stream" in page and "||dL/dh|| first/last block" in page


def test_a_functional_activation_is_said_in_words():
    """Without an activation module (torch.relu in forward) the layer cause says the activation factors
    were not measured, instead of '?'."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(5))

        def forward(self, x):
            for layer in self.layers:
                x = torch.relu(layer(x))
            return x

    torch.manual_seed(0)
    d = gradvet.diagnose(probed(Net(), torch.randn(16, 8)))
    assert d.basis == "layers" and "activation derivative factors were not measured" in d.cause
    assert "torch.relu" in d.cause
    no_unknowns(d)


def test_blocks_nested_in_blocks_are_not_the_blocks():
    """Experts repeated inside each block outnumber the blocks but are not the stream's blocks; a
    Sequential of Linear and ReLU repeats classes but holds no block."""

    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.down = nn.Linear(4, 8), nn.Linear(8, 4)

    class MoEBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = nn.ModuleList(Expert() for _ in range(4))

    model = nn.ModuleDict({"layers": nn.ModuleList(MoEBlock() for _ in range(3)),
                           "head": nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU())})
    assert [name for name, _ in find_blocks(model)] == ["layers.0", "layers.1", "layers.2"]
    assert find_blocks(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))) == []


def test_reentrant_checkpointing_keeps_the_blocks_in_the_models_order():
    """use_reentrant=True runs the first forward pass under no_grad and the recorded calls inside backward,
    last block first: the block rows and the stream ratio must still read first block to last, as autograd's."""
    from torch.utils.checkpoint import checkpoint

    class Checkpointed(nn.Module):
        def __init__(self, inner: nn.Sequential):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            h = self.inner[0](x)
            for block in list(self.inner)[1:-1]:
                h = checkpoint(block, h, use_reentrant=True)
            return self.inner[-1](h)

    plain = residual_mlp(1.0, blocks=6)
    x = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    seen = autograd_blocks(plain, x)
    wrapped = Checkpointed(residual_mlp(1.0, blocks=6))
    d = gradvet.diagnose(probed(wrapped, x))
    assert [b.name for b in d.blocks] == [f"inner.{i}" for i in range(1, 7)]
    expected = seen["1"][1].grad.norm() / seen["6"][1].grad.norm()
    assert d.ratio == pytest.approx(float(expected), rel=1e-6)
