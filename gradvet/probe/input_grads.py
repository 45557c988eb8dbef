"""dL/d input through one module, read off autograd's own backward nodes without changing the graph.

What `input_grad_norm` measures: for one call of a module with output y = f(x_1, ..., x_n), the
vector-Jacobian product J^T dL/dy at each distinct tensor input x_i that needs a gradient, the
gradient `torch.autograd.grad(y, [x_1, ..., x_n], dL/dy)` would give. A tensor passed several
times (nn.MultiheadAttention(x, x, x): query, key and value) is one input whose gradient sums its
three uses; a skip path around the module (h + f(h)) adds nothing, as it is not in f; an input
that needs no gradient (the data) has none.

How it is read: in the forward pre-hook the probe notes each distinct input's place in the
autograd graph (its grad_fn and output number, or for a leaf the leaf itself) and autograd's next
sequence number; in the forward hook it walks back from the module's outputs over the nodes the
forward pass created (sequence number at least that one) to the nodes that consume an input, and
registers a post-hook on each (`Node.register_hook`): after such a node runs, its gradient for the
input is in its `grad_inputs`. The hooks only read (they return None), so the gradients autograd
sums and the order it sums them in are untouched, bit for bit, unlike a private copy of the
input hooked in its place (which changes the summation order of x's gradient) or full backward
hooks (an identity Function around inputs and outputs that in-place operations on the output,
ReLU(inplace=True) or `out += x`, refuse). An input consumed by several nodes is summed over them
(a transient tensor, freed when its last consumer has run) before its norm is taken.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_next_sequence_nr = getattr(torch._C._autograd, "_get_sequence_nr", None)
_NO_SEQUENCE = 2**64 - 1  # AccumulateGrad's sequence number (runs first, never created by a forward)
MAX_NODES = 100_000  # a walk that meets more nodes than this gives up (the input gradient is then not read)


class Inputs:
    """The distinct tensor inputs of one call that need a gradient, as autograd edges."""

    __slots__ = ("count", "keep", "leaves", "nodes", "start")

    def __init__(self, tensors: list[torch.Tensor]):
        self.start = _next_sequence_nr() if _next_sequence_nr is not None else 0
        self.nodes: dict[tuple[int, int], int] = {}  # (id(grad_fn), output_nr) -> input index
        self.leaves: dict[int, int] = {}  # id(leaf tensor) -> input index
        self.keep: list = []  # the inputs' grad_fns: their ids stay valid while the walk runs
        for t in tensors:
            fn = t.grad_fn
            if fn is None:
                self.leaves.setdefault(id(t), len(self.nodes) + len(self.leaves))
            else:
                self.keep.append(fn)
                self.nodes.setdefault((id(fn), t.output_nr), len(self.nodes) + len(self.leaves))
        self.count = len(self.nodes) + len(self.leaves)


def of_call(args: tuple, kwargs: dict | None) -> Inputs | None:
    """The distinct tensor inputs of a call (positional and keyword, one level of tuples and lists)
    that need a gradient; None when there is none."""
    found: list[torch.Tensor] = []
    for value in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(value, torch.Tensor):
            if value.requires_grad:
                found.append(value)
        elif isinstance(value, (tuple, list)):
            found += [v for v in value if isinstance(v, torch.Tensor) and v.requires_grad]
    return Inputs(found) if found else None


def consumers(outputs: list[torch.Tensor], inputs: Inputs) -> dict[object, list[tuple[int, int]]]:
    """{node: [(j, input index), ...]}: the nodes made by the module's forward pass that consume an
    input, with the slot j of `node.next_functions` (and of its grad_inputs) that leads to it."""
    nodes, leaves, start = inputs.nodes, inputs.leaves, inputs.start
    found: dict[object, list[tuple[int, int]]] = {}
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            return {}
        for j, (nxt, nr) in enumerate(node.next_functions):
            if nxt is None:
                continue
            index = nodes.get((id(nxt), nr))
            if index is None and leaves and type(nxt).__name__ == "AccumulateGrad":
                index = leaves.get(id(nxt.variable))
            if index is not None:
                found.setdefault(node, []).append((j, index))
                continue
            seq = nxt._sequence_nr()
            if start <= seq != _NO_SEQUENCE:
                stack.append(nxt)
    return found


def _single(j: int, emit: Callable[[torch.Tensor], None], again: Callable[[], None]):
    """The post-hook of the one node consuming the one input, by one slot j (a Linear's input, an
    activation's): its grad_inputs[j] is the whole gradient through the module."""
    done = False

    def on_node(grad_inputs, grad_outputs) -> None:
        nonlocal done
        if done:
            again()
            return
        done = True
        g = grad_inputs[j]
        if g is not None:
            emit(g.detach())

    return on_node


class Pending:
    """The gradient of one call's inputs as its consumer nodes deliver it: each input's sum over
    its consumers is handed to `emit` once the last of them has run; a node that runs again (a
    second backward pass through the same graph, retain_graph=True) goes to `again` instead."""

    __slots__ = ("again", "emit", "expected", "got", "partial")

    def __init__(self, expected: list[int], emit: Callable[[torch.Tensor], None], again: Callable[[], None]):
        self.expected = expected  # per input: how many consumer nodes
        self.got = [0] * len(expected)
        self.partial: list[torch.Tensor | None] = [None] * len(expected)
        self.emit, self.again = emit, again

    def hook(self, slots: list[tuple[int, int]]):
        """The post-hook of one consumer node; `slots`: (j, input index) of the edges it feeds inputs by."""
        by_input: dict[int, list[int]] = {}
        for j, index in slots:
            by_input.setdefault(index, []).append(j)

        def on_node(grad_inputs, grad_outputs) -> None:
            repeated = False
            for index, js in by_input.items():
                if self.got[index] >= self.expected[index]:
                    repeated = True
                    continue
                for j in js:
                    g = grad_inputs[j]
                    if g is not None:
                        old = self.partial[index]
                        self.partial[index] = g.detach() if old is None else old + g.detach()
                self.got[index] += 1
                if self.got[index] == self.expected[index]:
                    self.flush(index)
            if repeated:
                self.again()

        return on_node

    def done(self) -> bool:
        """Whether every input's consumers have all run."""
        return all(g >= e for g, e in zip(self.got, self.expected))

    def flush(self, index: int) -> None:
        g, self.partial[index] = self.partial[index], None
        if g is not None:
            self.emit(g)

    def flush_all(self) -> None:
        """Hand over what arrived of inputs whose consumers did not all run (the step ends)."""
        for index in range(len(self.partial)):
            self.flush(index)


def watch(outputs: list[torch.Tensor], inputs: Inputs, emit: Callable[[torch.Tensor], None],
          again: Callable[[], None]) -> Pending | None:
    """Hook the consumer nodes of `inputs` below `outputs`; `emit(dL/d input)` per input once its
    gradient through the module is complete. Returns the `Pending` sums of an input with several
    consumers (to flush at the step's end), None when one node by one slot delivers it whole or no
    input reaches the outputs."""
    found = consumers(outputs, inputs)
    if not found:
        return None
    if len(found) == 1 and inputs.count == 1:
        ((node, slots),) = found.items()
        if len(slots) == 1:
            try:
                node.register_hook(_single(slots[0][0], emit, again))
            except (RuntimeError, TypeError, AttributeError):  # a node that takes no hook: not read
                pass
            return None
    expected = [0] * inputs.count
    for slots in found.values():
        for index in {i for _, i in slots}:
            expected[index] += 1
    pending = Pending(expected, emit, again)
    handles = []
    try:
        for node, slots in found.items():
            handles.append(node.register_hook(pending.hook(slots)))
    except (RuntimeError, TypeError, AttributeError):  # a node that takes no hook: this call's input gradient is not read
        for handle in handles:
            handle.remove()
        return None
    return pending
