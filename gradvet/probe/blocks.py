"""A model's repeated blocks, and whether each has an identity skip (a residual stream).

Blocks are the items of an nn.ModuleList or nn.Sequential that repeat one class (at least two
in one container): GPT2Block, BertLayer, nn.TransformerEncoderLayer, a ResNet BasicBlock, a
user's residual block. An item counts when it has parameters and submodules of its own and is
not itself a bare container (a Sequential of Linear and ReLU is a plain stack, not a block).
Items of the same class in several containers form one sequence (a ResNet's stages). Where
several classes repeat, the blocks nested inside another class's blocks are dropped (the
experts inside a transformer block), and the class with the most blocks is taken (ties: the
first in `model.named_modules()` order).

A block has an identity skip when, in the autograd graph of one call, its output reaches its
input along a path through no weight layer: no node that takes one of the block's parameters,
except those of normalisation layers (a Post-LN block's stream passes its LayerNorm). A plain
block h = f(Wx) has none; h = x + f(x), x + alpha f(x) (SkipInit, ReZero) and LN(x + f(x)) do.
When every such path passes a node taking a norm layer's parameters, the stream itself is
normalised in the block (Post-LN: `skip_through_norm`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from gradvet.base.errors import GradvetError, unknown
from gradvet.probe.layers import NORM_TYPES

CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)
SEARCH_LIMIT = 20_000  # autograd nodes visited at most when looking for a skip
_VIEW_DEPTH = 4  # single-input nodes (transpose, view, cast) followed from a node to a parameter


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: one of PyTorch's, or a class named like one (LlamaRMSNorm, T5LayerNorm)."""
    return isinstance(module, NORM_TYPES) or "norm" in type(module).__name__.lower()


def _is_block(module: nn.Module) -> bool:
    return (not isinstance(module, CONTAINERS) and any(True for _ in module.children())
            and any(True for _ in module.parameters()))


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the model's repeated blocks in `model.named_modules()` order (see the
    module docstring); [] when nothing repeats."""
    groups: dict[type, list[tuple[str, nn.Module]]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)):
            continue
        items: dict[type, list[tuple[str, nn.Module]]] = {}
        for child_name, child in module.named_children():
            if _is_block(child):
                items.setdefault(type(child), []).append((f"{name}.{child_name}" if name else child_name, child))
        for cls, found in items.items():
            if len(found) >= 2:
                groups.setdefault(cls, []).extend(found)
    if not groups:
        return []
    below = {cls: {id(m) for _, block in found for m in block.modules() if m is not block}
             for cls, found in groups.items()}  # every module inside a block of that class
    outer = [found for cls, found in groups.items()
             if not any(other is not cls and id(m) in below[other] for other in groups for _, m in found)]
    return max(outer, key=len) if outer else []  # max keeps the first of equal length


def chosen_blocks(model: nn.Module, blocks: bool | Iterable[str] | None) -> list[tuple[str, nn.Module]]:
    """The blocks a Probe records: found (`blocks` None or True), none (False), or the modules
    named (an iterable of names in `model.named_modules()`)."""
    if blocks is None or blocks is True:
        return find_blocks(model)
    if blocks is False:
        return []
    if isinstance(blocks, str):
        raise GradvetError(f"blocks={blocks!r} is one name; give a list of module names, True or False.")
    modules = dict(model.named_modules())
    chosen = []
    for name in blocks:
        if not isinstance(name, str) or name not in modules or name == "":
            raise unknown("block", name, [n for n in modules if n], context="Probe(blocks=...)")
        chosen.append((name, modules[name]))
    return chosen


def weight_parameters(block: nn.Module) -> set[int]:
    """ids of the block's parameters outside its normalisation layers (what a skip path avoids)."""
    return {id(p) for m in block.modules() if not is_norm(m) for p in m.parameters(recurse=False)}


def norm_parameters(block: nn.Module) -> set[int]:
    """ids of the parameters of the block's normalisation layers."""
    return {id(p) for m in block.modules() if is_norm(m) for p in m.parameters(recurse=False)}


def _takes_weight(node, weights: set[int]) -> bool:
    """Whether an autograd node takes a weight parameter (directly or through a transpose, view or cast)."""
    for child, _ in node.next_functions:
        depth = 0
        while child is not None and depth < _VIEW_DEPTH:
            variable = getattr(child, "variable", None)
            if variable is not None:
                if id(variable) in weights:
                    return True
                break
            nexts = [n for n, _ in child.next_functions if n is not None]
            if len(nexts) != 1:
                break
            child, depth = nexts[0], depth + 1
    return False


def identity_skip(out: torch.Tensor, x: torch.Tensor, weights: set[int]) -> bool | None:
    """Whether the autograd graph leads from `out` back to `x` through no node taking one of the
    parameters whose ids are in `weights`; None when it cannot tell (no graph to `x`: it needs no
    gradient)."""
    if out.grad_fn is None or not x.requires_grad:
        return None
    target = x.grad_fn
    stack, seen = [out.grad_fn], set[object]()
    while stack and len(seen) < SEARCH_LIMIT:
        node = stack.pop()
        if node in seen:
            continue
        if (target is not None and node is target) or (target is None and getattr(node, "variable", None) is x):
            return True
        seen.add(node)
        if not _takes_weight(node, weights):
            stack.extend(n for n, _ in node.next_functions if n is not None)
    return False


def skip_through_norm(out: torch.Tensor, x: torch.Tensor, block: nn.Module) -> bool | None:
    """Whether the block's identity skip passes a normalisation layer (Post-LN: every path from
    `out` to `x` free of weights takes a norm's parameters); None when it has no identity skip or
    none can be told."""
    weights = weight_parameters(block)
    if not identity_skip(out, x, weights):
        return None
    return not identity_skip(out, x, weights | norm_parameters(block))
