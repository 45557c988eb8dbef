"""`BlockRecorder`: the hooks a Probe puts on a model's repeated blocks (`probe.blocks`) to
record the block metrics (scope BLOCK, `probe.metrics.block_unit`) of each step.

Per block: a forward pre-hook takes the block's input x (its first tensor argument, or the
first tensor keyword argument: hidden_states) and, where a metric reads dL/dx, puts a tensor
hook on x; a forward hook hands x and the output (its first tensor) to the metrics, puts a
tensor hook on the output where one reads dL/d output, and on the block's first call looks
for an identity skip in the autograd graph (`blocks.identity_skip`). Tensor hooks change no
result (no clone in the forward, unlike a layer's private input copy), and the metrics keep
0-d tensors only: memory O(blocks). Forward passes under torch.no_grad() record nothing.
The step's 0-d tensors go into the probe's one host copy (`tensors`, then `rows`).

Blocks found by `blocks.find_blocks` are recorded only when they carry a residual stream: a
block found to have no identity skip (gradvet's own plain MLP blocks, linear -> activation)
records nothing, and its hooks return at once from then on; blocks named by the user
(`Probe(blocks=[...])`) are recorded whatever their skip.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from gradvet.probe.blocks import chosen_blocks, identity_skip, skip_through_norm, weight_parameters
from gradvet.probe.metrics.block_unit import BlockMetric, BlockStep
from gradvet.probe.metrics.unit import INPUT_GRAD, OUTPUT_GRAD, Metric, Parts, Values
from gradvet.probe.tensors import first_tensor


class BlockRecorder:
    """Records `units` (block metrics) on the blocks of a model; the Probe drives it."""

    def __init__(self, units: Iterable[Metric]):
        self.units = [u for u in units if isinstance(u, BlockMetric)]
        self.blocks: list[tuple[str, nn.Module]] = []
        self._named = False  # blocks named by the user: recorded with or without a skip
        self._input_grad = any(INPUT_GRAD in u.reads for u in self.units)
        self._output_grad = any(OUTPUT_GRAD in u.reads for u in self.units)
        self._weights: dict[str, set[int]] = {}
        self._skip: dict[str, bool | None] = {}  # per block, kept across steps once known
        self.post_norm: dict[str, bool] = {}  # per block with a skip: whether the stream passes a norm in it (Post-LN)
        self._state: dict[str, BlockStep] = {}
        self._pending: dict[str, list[tuple[torch.Tensor | None, int]]] = {}  # (input, its version) per open call
        self._module_hooks: list = []
        self._tensor_hooks: list = []
        self._measured: list[tuple[BlockStep, list[tuple[BlockMetric, int]]]] = []

    @property
    def hooks_attached(self) -> int:
        return len(self._module_hooks)

    def enter(self, model: nn.Module, blocks) -> None:
        """Find the blocks (`blocks.chosen_blocks`); none when no block metric is recorded."""
        self.blocks = chosen_blocks(model, blocks) if self.units else []
        self._named = blocks is not None and not isinstance(blocks, bool)
        self._weights = {name: weight_parameters(module) for name, module in self.blocks}
        self._skip = {name: self._skip.get(name) for name, _ in self.blocks}

    def attach(self) -> None:
        if self._module_hooks:
            return
        for name, module in self.blocks:
            self._module_hooks.append(module.register_forward_pre_hook(self._pre_hook(name), with_kwargs=True))
            self._module_hooks.append(module.register_forward_hook(self._hook(name)))

    def detach(self) -> None:
        for handle in self._module_hooks:
            handle.remove()
        self._module_hooks = []
        self._drop_tensor_hooks()

    def reset(self, step: int) -> None:
        """Start step `step`: fresh state, and the last step's tensor hooks removed (a leaf input
        reused across steps would otherwise gather them)."""
        self._drop_tensor_hooks()
        self._state = {name: BlockStep(name, step, skip=self._skip.get(name)) for name, _ in self.blocks}
        self._pending = {}

    def _drop_tensor_hooks(self) -> None:
        for handle in self._tensor_hooks:
            handle.remove()
        self._tensor_hooks = []

    # -- hooks ---------------------------------------------------------------------------------
    def _plain(self, name: str) -> bool:
        """A found block known to have no identity skip: nothing to record."""
        return not self._named and self._skip.get(name) is False

    def _pre_hook(self, name: str):
        def hook(module, args, kwargs):
            st = self._state.get(name)
            if st is None or not torch.is_grad_enabled() or self._plain(name):
                return None
            x = first_tensor(args)
            if x is None:
                x = first_tensor((kwargs.get("hidden_states"), *kwargs.values()))
            self._pending.setdefault(name, []).append((x, x._version if x is not None else 0))
            if x is not None and self._input_grad and x.requires_grad:
                self._tensor_hooks.append(x.register_hook(self._grad_hook(st, "input_grad")))
            return None

        return hook

    def _hook(self, name: str):
        def hook(module, inputs, output):
            st = self._state.get(name)
            if st is None or not torch.is_grad_enabled() or self._plain(name):
                return
            pending = self._pending.get(name)
            x, version = pending.pop() if pending else (None, 0)
            out = first_tensor(output)
            if out is None:
                return
            st.calls += 1
            if x is not None and self._skip.get(name) is None:
                self._skip[name] = st.skip = identity_skip(out, x, self._weights[name])
                if st.skip:
                    self.post_norm[name] = bool(skip_through_norm(out, x, module))
            intact = x if x is not None and x._version == version else None
            for unit in self.units:
                unit.forward(st, intact, out)
            if self._output_grad and out.requires_grad:
                self._tensor_hooks.append(out.register_hook(self._grad_hook(st, "output_grad")))

        return hook

    def _grad_hook(self, st: BlockStep, which: str):
        units = [u for u in self.units if (INPUT_GRAD if which == "input_grad" else OUTPUT_GRAD) in u.reads]

        def hook(g: torch.Tensor) -> None:
            for unit in units:
                getattr(unit, which)(st, g)

        return hook

    # -- one step's numbers --------------------------------------------------------------------
    def tensors(self) -> list[torch.Tensor]:
        """The step's 0-d tensors of every block and metric, in the order `rows` reads them back."""
        known = [s for s in self._skip.values() if s is not None]
        residual = any(known)
        self._measured, flat = [], []
        # the blocks called in the step, in the model's order (`self.blocks`), not in the order of their
        # first recorded call: under reentrant checkpointing that is the recomputation inside backward,
        # which runs the blocks last to first
        for name, _ in self.blocks:
            st = self._state[name]
            if not st.calls:
                continue
            if st.skip is None:
                st.skip = residual if known else None  # undecided (no gradient at its input): as the others
            if st.skip is False and not self._named:
                continue
            parts = []
            for unit in self.units:
                got = unit.measure(st).scalars
                parts.append((unit, len(got)))
                flat += got
            self._measured.append((st, parts))
        return flat

    def rows(self, step: int, floats: list[float]) -> list[tuple[int, str, str, float]]:
        """(step, block, metric, value) rows from the floats of the host copy, blocks in the model's order."""
        out, at = [], 0
        for st, parts in self._measured:
            values = Values()
            for unit, count in parts:
                value = unit.value(Parts(scalars=floats[at: at + count]), values, st)  # type: ignore[arg-type]  # a BlockStep
                at += count
                if value is not None:
                    values.put(unit, value)
            out += [(step, st.name, metric, value) for metric, value in values.items()]
        self._measured = []
        return out
