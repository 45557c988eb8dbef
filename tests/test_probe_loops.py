"""The probe in training loops as they are (issue 14, items 2, 4, 5): inputs used several times,
bit-identical training, clipping, gradient accumulation, activation checkpointing, retain_graph,
loops without a step boundary, tied weights, torch.compile, and memory that does not grow with
the batch or the micro-batches. Each against an independent computation: autograd in float64,
the number torch itself returns (clip_grad_norm_), or the same loop without the probe."""

from __future__ import annotations

import math
import re
import warnings

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import gradvet
from gradvet import Probe
from gradvet.models import mlp
from gradvet.probe import watched_modules


def grad_norms_by_layer(model: nn.Module) -> dict[tuple[str, str], float]:
    """{(layer, weight_grad_norm | bias_grad_norm): ||.grad||} of every watched module's own
    parameters, read straight from .grad (root of the sum of squares over the layer's parameters)."""
    out: dict[tuple[str, str], float] = {}
    for w in watched_modules(model):
        for pname, p in w.module.named_parameters(recurse=False):
            if p.grad is None:
                continue
            key = (w.name, "bias_grad_norm" if pname.startswith("bias") else "weight_grad_norm")
            out[key] = math.hypot(out.get(key, 0.0), float(p.grad.norm()))
    return out


# -- item 2: modules with several inputs, and training not changed by one bit ----------------------

class SelfAttentionNet(nn.Module):
    """inp -> self-attention (query = key = value = h) with a skip path -> mean over the sequence -> out."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.out((h + a).mean(1))


def test_self_attention_input_gradient_is_the_sum_through_query_key_and_value():
    torch.manual_seed(0)
    model = SelfAttentionNet().double()
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    seen = {}
    handle = model.attn.register_forward_hook(lambda m, i, o: seen.update(h=i[0], a=o[0]))
    loss = nn.functional.cross_entropy(model(x), y)
    handle.remove()
    (g_a,) = torch.autograd.grad(loss, seen["a"], retain_graph=True)
    (through,) = torch.autograd.grad(seen["a"], seen["h"], g_a)  # through the module only: the skip h + a is not in it
    # the query's share alone, what a hook on the first input reads: autograd through a copy used only as query
    h = seen["h"].detach().requires_grad_(True)
    a, _ = model.attn(h, seen["h"].detach(), seen["h"].detach(), need_weights=False)
    (query_only,) = torch.autograd.grad(a, h, g_a)
    with Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    got = probe.trace.at(0)["attn"]
    assert got["input_grad_norm"] == pytest.approx(float(through.norm()), rel=1e-9)
    assert got["output_grad_norm"] == pytest.approx(float(g_a.norm()), rel=1e-9)
    assert abs(float(query_only.norm()) - float(through.norm())) > 0.1 * float(through.norm())


@pytest.mark.parametrize("memory_needs_grad", [None, False, True])
def test_input_gradient_is_over_the_distinct_inputs_that_need_one(memory_needs_grad):
    """None: self-attention on a leaf x (query = key = value); False: cross-attention whose key and value
    (the memory) need no gradient, so only the query's counts; True: two distinct inputs, one norm over both."""
    torch.manual_seed(1)
    attn = nn.MultiheadAttention(6, 3).double()
    x = torch.randn(5, 2, 6, dtype=torch.float64, requires_grad=True)
    memory = x if memory_needs_grad is None else torch.randn(7, 2, 6, dtype=torch.float64,
                                                             requires_grad=memory_needs_grad)
    wrt = [x] if not memory_needs_grad else [x, memory]
    out, _ = attn(x, memory, memory, need_weights=False)
    expected = torch.autograd.grad(out.pow(2).sum(), wrt)
    with Probe(attn) as probe:
        out, _ = attn(x, memory, memory, need_weights=False)
        out.pow(2).sum().backward()
        probe.step()
    norm = math.sqrt(sum(float(g.norm()) ** 2 for g in expected))
    assert probe.trace.at(0)[""]["input_grad_norm"] == pytest.approx(norm, rel=1e-9)


def test_no_parameter_hook_survives_the_with_block():
    model = mlp(6, 3, depth=2, width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(KeyError):
        with Probe(model, opt) as probe:
            nn.functional.cross_entropy(model(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
            assert probe.hooks_attached > 0 and any(p._post_accumulate_grad_hooks for p in model.parameters())
            raise KeyError("a loop that fails")
    assert probe.hooks_attached == 0
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())


class InplaceResidual(nn.Module):
    """Linear -> ReLU(inplace=True) -> Linear, with `out += x` around the hidden pair."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(5, 8)
        self.fc1 = nn.Linear(8, 8)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.inp(x)
        out = self.fc2(self.act(self.fc1(x)))
        out += x
        return self.head(out)


def transformer_encoder():
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.1, batch_first=True)
    return nn.Sequential(nn.Linear(4, 8), nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False),
                         nn.Flatten(), nn.Linear(8 * 5, 3))


@pytest.mark.parametrize("build,shape", [(transformer_encoder, (6, 5, 4)), (InplaceResidual, (6, 5))])
def test_training_is_bit_identical_with_and_without_the_probe(build, shape):
    """Three AdamW steps in float64 (dropout on: the probe must not draw from the RNG either)."""

    def train(probed: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = build().double()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        x = torch.randn(*shape, dtype=torch.float64)
        y = torch.tensor([0, 1, 2, 0, 1, 2])
        probe = Probe(model, opt)
        with probe if probed else _nothing():
            for _ in range(3):
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                opt.zero_grad()
        if probed:
            assert probe.trace.steps() == [0, 1, 2]
        return [p.detach().clone() for p in model.parameters()]

    plain, probed = train(False), train(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, probed))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


# -- item 4: training loops as they are ------------------------------------------------------------

def test_parameter_gradient_norms_are_read_before_clipping():
    torch.manual_seed(0)
    model = mlp(10, 3, depth=4, width=16, activation="tanh", init="xavier")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 10), torch.randint(0, 3, (32,))
    with Probe(model, opt) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        total = float(nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05))
        clipped = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters()))
        opt.step()
    assert total > 0.05 * 2 and clipped == pytest.approx(0.05, rel=1e-4)  # it clipped
    recorded = [v for _, _, metric, v in probe.trace.rows if metric in ("weight_grad_norm", "bias_grad_norm")]
    assert len(recorded) == 2 * 5
    assert math.sqrt(sum(v * v for v in recorded)) == pytest.approx(total, rel=1e-6)
    applied = [v for _, _, metric, v in probe.trace.rows if metric == "applied_grad_norm"]  # after clipping
    assert len(applied) == 5
    assert math.sqrt(sum(v * v for v in applied)) == pytest.approx(clipped, rel=1e-6)


def test_micro_batches_of_gradient_accumulation_are_one_step_and_one_call():
    torch.manual_seed(0)
    model = mlp(10, 3, depth=10, width=16, activation="sigmoid", init="xavier").double()  # vanishing
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs = [torch.randn(8, 10, dtype=torch.float64) for _ in range(4)]
    y = torch.arange(8) % 3
    with Probe(model, opt) as probe:
        for x in xs:
            (nn.functional.cross_entropy(model(x), y) / 4).backward()
        accumulated = grad_norms_by_layer(model)  # before the step, independently of the probe
        opt.step()
        opt.zero_grad()
    assert probe.trace.steps() == [0]
    assert "calls" not in probe.trace.metrics() and probe.shared == {}
    got = probe.trace.at(0)
    assert len(accumulated) == 22
    for (layer, metric), value in accumulated.items():
        assert got[layer][metric] == pytest.approx(value, rel=1e-9), (layer, metric)
    d = gradvet.diagnose(probe)
    assert d.verdict == "vanishing"
    assert not any("called more than once" in n for n in d.notes)
    assert not any("LSTM" in r.action or "recurren" in r.why for r in d.remedies)


def test_two_calls_in_one_forward_pass_are_weight_sharing():
    torch.manual_seed(0)
    lin, act, head = nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2)
    model = nn.ModuleDict({"lin": lin, "act": act, "head": head})
    x = torch.randn(4, 6)
    with Probe(model) as probe:
        for _ in range(3):  # three micro-batches, each running `lin` twice
            head(act(lin(act(lin(x))))).sum().backward()
        probe.step()
    assert probe.shared == {"lin": 2, "act": 2}
    assert probe.trace.at(0)["lin"]["calls"] == 2.0


class Blocks(nn.Module):
    """inp -> 3 blocks (Linear, Tanh, Linear, GELU), each checkpointed or not -> head."""

    def __init__(self, use_reentrant: bool | None):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.GELU())
                                    for _ in range(3))
        self.head = nn.Linear(8, 3)
        self.use_reentrant = use_reentrant

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = block(h) if self.use_reentrant is None else checkpoint(block, h, use_reentrant=self.use_reentrant)
        return self.head(h)


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpointing_recomputation_is_no_second_call(use_reentrant):
    def probed(mode):
        torch.manual_seed(0)
        model = Blocks(mode).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(10, 6, dtype=torch.float64), torch.arange(10) % 3
        with Probe(model, opt) as probe:
            for _ in range(2):
                for _ in range(2):  # two micro-batches
                    nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                opt.zero_grad()
        return probe

    plain, checkpointed = probed(None), probed(use_reentrant)
    a = {r[:3]: r[3] for r in plain.trace.rows}
    b = {r[:3]: r[3] for r in checkpointed.trace.rows}
    assert set(a) == set(b) and len(a) > 150
    assert "calls" not in checkpointed.trace.metrics()
    assert any(k[2] == "activation_gain" or k[2] == "gain" for k in b)
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=1e-9, abs=1e-15), key
    assert checkpointed.trace.layers() == plain.trace.layers()  # forward order


def test_a_second_backward_through_the_same_graph_is_noted_not_added():
    """Defined: output_grad_norm and input_grad_norm are those of the first backward pass through a
    forward call; weight and bias norms those of .grad, which autograd sums over both passes."""
    torch.manual_seed(0)
    model = mlp(6, 3, depth=2, width=8, activation="tanh", init="xavier").double()
    x, y = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])

    def run(twice: bool):
        model.zero_grad()
        with Probe(model) as probe:
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward(retain_graph=twice)
            if twice:
                loss.backward()
            grads = grad_norms_by_layer(model)
            probe.step()
        return probe, grads

    once, _ = run(False)
    twice, grads = run(True)
    notes = [n for n in twice.trace.notes if "second backward" in n]
    assert len(notes) == 1 and not once.trace.notes
    a, b = once.trace.at(0), twice.trace.at(0)
    for layer in a:
        for metric in ("output_grad_norm", "input_grad_norm"):
            if metric in a[layer]:
                assert b[layer][metric] == pytest.approx(a[layer][metric], rel=1e-12), (layer, metric)
    for (layer, metric), value in grads.items():
        assert b[layer][metric] == pytest.approx(value, rel=1e-12)
        assert b[layer][metric] == pytest.approx(2 * a[layer][metric], rel=1e-9)


def test_a_loop_without_step_boundary_warns_once():
    torch.manual_seed(0)
    model = mlp(6, 3, depth=2, width=8)
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    with pytest.warns(UserWarning, match="no optimizer was given and probe.step\\(\\) was not called") as caught:
        with Probe(model) as probe:
            for _ in range(3):
                nn.functional.cross_entropy(model(x), y).backward()
    assert len([w for w in caught if "probe.step()" in str(w.message)]) == 1
    assert probe.trace.steps() == [0] and any("3 backward passes" in n for n in probe.trace.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Probe(model) as probe:  # with probe.step(): no warning
            for _ in range(3):
                nn.functional.cross_entropy(model(x), y).backward()
                probe.step()
        assert probe.trace.steps() == [0, 1, 2]


def test_tied_parameters_are_listed_once_with_a_note():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=40, n_positions=8, n_embd=16, n_layer=2, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    assert model.lm_head.weight is model.transformer.wte.weight
    ids = torch.randint(0, 40, (3, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with Probe(model, opt) as probe:
        model(input_ids=ids, labels=ids).loss.backward()
        wte = float(model.transformer.wte.weight.grad.norm())  # both uses, summed by autograd
        opt.step()
    at = probe.trace.at(0)
    assert at["transformer.wte"]["weight_grad_norm"] == pytest.approx(wte, rel=1e-6)
    assert "weight_grad_norm" not in at.get("lm_head", {})
    assert probe.tied == {"lm_head.weight": "transformer.wte.weight"}
    assert any("lm_head.weight is transformer.wte.weight" in n for n in probe.trace.notes)
    assert any("lm_head.weight is transformer.wte.weight" in n for n in gradvet.diagnose(probe).notes)


@pytest.mark.slow
def test_compiled_model_keeps_its_layer_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    compiled = torch.compile(model)
    x, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 0])
    try:
        with Probe(compiled) as probe:
            nn.functional.cross_entropy(compiled(x), y).backward()
            probe.step()
    except Exception as exc:  # noqa: BLE001 - no working compiler on this machine
        pytest.skip(f"torch.compile unavailable here: {type(exc).__name__}: {exc}")
    expected = grad_norms_by_layer(model)
    at = probe.trace.at(0)
    assert set(probe.trace.layers()) == {"0", "1", "2"}
    for (layer, metric), value in expected.items():
        assert at[layer][metric] == pytest.approx(value, rel=1e-5)
    assert "output_grad_norm" in at["1"] and "mean" in at["1"]
    assert any(n.startswith("torch.compile: ") and "graph break" in n for n in probe.trace.notes)


# -- item 5: memory O(layers) ------------------------------------------------------------------------

def tensor_bytes(root) -> int:
    """Bytes of every tensor reachable from `root` through __dict__, __slots__, lists, tuples, sets and
    dicts (not through modules, optimisers or functions: the model's own), each storage counted once."""
    seen_objects: set[int] = set()
    storages: dict[int, int] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen_objects:
            continue
        seen_objects.add(id(obj))
        if torch.is_tensor(obj):
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
        elif isinstance(obj, (nn.Module, torch.optim.Optimizer)) or callable(obj):
            continue
        elif isinstance(obj, dict):
            stack += list(obj.keys()) + list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        elif hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
            if hasattr(obj, "__dict__") and not isinstance(obj, type):
                stack.append(vars(obj))
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    stack.append(getattr(obj, slot))
    return sum(storages.values())


def held_by_probe(batch: int, micro_batches: int) -> int:
    """Bytes the probe holds in the middle of a step of a 256-512-512-10 MLP, after `micro_batches` backward passes."""
    torch.manual_seed(0)
    model = mlp(256, 10, depth=2, width=512, activation="relu", init="he")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(batch, 256), torch.randint(0, 10, (batch,))
    with Probe(model, opt) as probe:
        for _ in range(micro_batches):
            nn.functional.cross_entropy(model(x), y).backward()
        held = tensor_bytes(probe)
        opt.step()
    assert probe.trace.steps() == [0]
    return held


def test_what_the_probe_holds_does_not_grow_with_micro_batches_or_batch():
    params = sum(p.numel() * 4 for p in mlp(256, 10, depth=2, width=512).parameters())
    one, eight = held_by_probe(256, 1), held_by_probe(256, 8)
    assert eight <= one
    small, large = held_by_probe(64, 1), held_by_probe(512, 1)
    assert large <= small
    assert one < params + 64 * 1024  # the parameters it watches (reachable, the model's own) and small results


def test_the_readme_metric_example_reduces_in_the_hook_and_matches_autograd():
    """The README's own metric of one's own, run as written: max |dL/d output| of each weight layer."""
    from pathlib import Path

    from gradvet.probe import metrics

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = next(b for b in readme.split("```python")[1:] if "class OutputGradMax" in b).split("```")[0]
    try:
        exec(compile(block, "README.md", "exec"), {})
        torch.manual_seed(0)
        model = mlp(6, 3, depth=2, width=8, activation="tanh", init="xavier").double()
        x, y = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
        outs = {}
        hooks = [m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o))
                 for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        loss = nn.functional.cross_entropy(model(x), y)
        for h in hooks:
            h.remove()
        expected = dict(zip(outs, torch.autograd.grad(loss, list(outs.values()))))
        with Probe(model) as probe:
            nn.functional.cross_entropy(model(x), y).backward()
            probe.step()
    finally:
        metrics.unregister("output_grad_max")
    at = probe.trace.at(0)
    assert set(expected) == {"hidden.0.linear", "hidden.1.linear", "out"}
    for name, g in expected.items():
        assert at[name]["output_grad_max"] == pytest.approx(float(g.abs().max()), rel=1e-12)


def test_hooks_make_no_host_copy():
    """Inside a step the hooks reduce on the device: no .item(), .tolist(), float() or bool() of a tensor
    (each a host sync on a GPU) during forward and backward; the step's numbers reach the host once."""
    torch.manual_seed(0)
    model = mlp(6, 3, depth=3, width=8, activation="gelu", init="he")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    copies = []
    originals = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "__float__", "__bool__")}

    def counted(name):
        def method(self, *args, **kwargs):
            copies.append(name)
            return originals[name](self, *args, **kwargs)
        return method

    with Probe(model, opt) as probe:
        loss_fn = nn.functional.cross_entropy
        try:
            for name in originals:
                setattr(torch.Tensor, name, counted(name))
            for _ in range(2):
                loss_fn(model(x), y).backward()
        finally:
            for name, method in originals.items():
                setattr(torch.Tensor, name, method)
        opt.step()
    assert copies == []
    assert probe.trace.steps() == [0] and len(probe.trace.rows) > 30


@pytest.mark.parametrize("kwargs, named", [
    ({"optimizer": "sgd"}, "optimizer='sgd'"),
    ({"blocks": 3}, "blocks=3"),
    ({"blocks": [1, 2]}, "blocks=[1, 2]"),
])
def test_bad_probe_arguments_are_one_sentence(kwargs, named):
    from gradvet.base.errors import GradvetError

    with pytest.raises(GradvetError, match=re.escape(named)):
        gradvet.Probe(nn.Linear(3, 2), **kwargs)


@pytest.mark.parametrize("shape, view", [((6, 4), False), ((2, 3, 4), True)])
def test_a_view_changed_in_place_is_noted_where_torch_calls_no_hook(shape, view):
    """A Linear on a 3-D input returns a view; ReLU(inplace=True) after it makes torch skip tensor hooks
    on that view. Where that happens the probe says so; on a 2-D input the number is there, as autograd's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    x = torch.randn(*shape)
    with gradvet.Probe(model) as probe:
        model(x).sum().backward()
    recorded = {metric for _, layer, metric, _ in probe.trace.rows if layer == "0"}
    noted = [n for n in probe.trace.notes if "'0' is a view that '1' changes in place" in n]
    assert ("output_grad_norm" not in recorded) == view and bool(noted) == view
    if not view:  # the number equals autograd's dL/d(output of layer 0)
        twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        twin.load_state_dict(model.state_dict())
        h = twin[0](x)
        h.retain_grad()
        twin[2](twin[1](h)).sum().backward()
        value = probe.trace.at(0)["0"]["output_grad_norm"]
        assert value == pytest.approx(float(h.grad.norm()), rel=1e-6)
