"""The diagnosis of a residual stream: a model whose repeated blocks (`probe.blocks`) have an
identity skip, read from the block metrics the probe records (`probe.metrics.block_unit`).

In a residual net the per-layer chain rule does not telescope: dL/dx = (I + J_f)^T dL/dh at every
block, so the gradient reaches the first layer along the skips as well as through the layers,
and the product of the layers' factors (1e-113 in a small GPT-2) says nothing about it. The
verdict reads instead the backward signal on the stream, stream_grad_norm = ||dL/dh_l|| at the
output of block l, first block over last, with the layer verdict's thresholds; the cause splits
it into the gain per block (geometric mean of block_gain, whose product over the blocks is the
ratio), the branch against the skip (branch_ratio ||f(x)||/||x||: near 0 a block is the identity,
near 1 it multiplies the stream instead of adding to it; Hanin & Rolnick 2018, Zhang et al.
2019) and what normalisation does to the stream (Pre-LN normalises each branch's input and
never the stream; Post-LN normalises the stream after every block; Xiong et al. 2020).
A block counts as residual when branch_ratio was recorded for it: the probe records it only for
blocks with an identity skip whose output has its input's shape.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from gradvet.base.formatting import short_number
from gradvet.base.stats import geometric_mean
from gradvet.probe.metrics.block_gain import BlockGain
from gradvet.probe.metrics.branch_ratio import BranchRatio
from gradvet.probe.metrics.stream_grad_norm import StreamGradNorm
from gradvet.probe.metrics.stream_std import StreamStd
from gradvet.probe.thresholds import BRANCH_IDENTITY, BRANCH_LARGE

RATIO_NAME = "||dL/dh|| first/last block"
NORMALISATION = ("pre", "post", "inside", "none")


@dataclass
class BlockReport:
    """One block: the backward signal on the stream at its output (stream_grad_norm), its ratio to
    the last block's, and the block's gain, stream std and branch ratio (None: not measured)."""

    name: str
    stream_grad_norm: float
    ratio_to_last: float
    block_gain: float | None = None
    stream_std: float | None = None
    branch_ratio: float | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class Stream:
    """The residual stream in a few numbers: how many blocks, the gain per block (geometric mean of
    the finite positive block_gain values, over `gains_measured` blocks), the mean branch_ratio and
    its values at the first and last block, the stream's std at the first and last block, and where
    the normalisation sits ('pre', 'post', 'inside' the branches, or 'none') and its class."""

    blocks: int
    first: str
    last: str
    gain_per_block: float | None
    gains_measured: int
    branch_ratio_mean: float | None
    branch_ratio_first: float | None
    branch_ratio_last: float | None
    std_first: float | None
    std_last: float | None
    normalisation: str
    norm_class: str | None


def block_names(table: dict[str, dict[str, float]]) -> list[str]:
    """The blocks of one step's table ({layer: {metric: value}}), in the trace's order."""
    return [name for name, row in table.items() if StreamGradNorm.name in row]


def is_residual(table: dict[str, dict[str, float]], blocks: list[str]) -> bool:
    """At least two blocks, and a branch_ratio for one of them (an identity skip was found)."""
    return len(blocks) >= 2 and any(BranchRatio.name in table[b] for b in blocks)


def block_reports(table: dict[str, dict[str, float]], blocks: list[str]) -> list[BlockReport]:
    last = table[blocks[-1]][StreamGradNorm.name]
    reports = []
    for name in blocks:
        row = table[name]
        delta = row[StreamGradNorm.name]
        ratio = delta / last if last > 0 and math.isfinite(last) else (1.0 if delta == last == 0 else math.inf)
        report = BlockReport(name, delta, ratio, row.get(BlockGain.name), row.get(StreamStd.name),
                             row.get(BranchRatio.name))
        if report.branch_ratio is not None and report.branch_ratio < BRANCH_IDENTITY:
            report.flags.append("identity")
        reports.append(report)
    return reports


def stream_ratio(reports: list[BlockReport]) -> float:
    """||dL/dh|| at the first block over the last; 0 when no gradient reached the stream at all."""
    first, last = reports[0].stream_grad_norm, reports[-1].stream_grad_norm
    if last == 0:
        return 0.0 if first == 0 else math.inf
    return first / last


def _normalisation(order: list[str], kinds: dict[str, str], blocks: list[str], classes: dict[str, str],
                   post_norm: dict[str, bool] | None) -> tuple[str, str | None]:
    """Where the blocks' norm layers sit, the most common over the blocks, with its class: 'post' (the
    stream passes a norm inside the block: `post_norm` from the probe's look at the autograd graph; for a
    trace read back alone, the block's last watched layer is a norm), 'pre' (a block's first watched layer
    is a norm), 'inside' (elsewhere: in the branches), 'none'."""
    places, found = [], []
    for block in blocks:
        inside = [n for n in order if n.startswith(block + ".") and kinds.get(n) in ("weight", "norm", "activation")]
        norms = [n for n in inside if kinds.get(n) == "norm"]
        if not norms:
            places.append("none")
            continue
        found.append(classes.get(norms[0]) or "a norm layer")
        post = post_norm.get(block) if post_norm is not None and block in post_norm else inside[-1] in norms
        places.append("post" if post else "pre" if inside[0] in norms else "inside")
    place = statistics.mode(places)
    return place, (statistics.mode(found) if found and place != "none" else None)


def stream_summary(table: dict[str, dict[str, float]], reports: list[BlockReport], kinds: dict[str, str],
                   classes: dict[str, str] | None = None, post_norm: dict[str, bool] | None = None) -> Stream:
    """The Stream of these blocks; `classes`: module name -> class name, and `post_norm`: block -> whether
    its stream passes a norm, where known (from a probe)."""
    gains = [r.block_gain for r in reports if r.block_gain is not None and math.isfinite(r.block_gain) and r.block_gain > 0]
    branches = [r.branch_ratio for r in reports if r.branch_ratio is not None and math.isfinite(r.branch_ratio)]
    with_branch = [r for r in reports if r.branch_ratio is not None and math.isfinite(r.branch_ratio)]
    stds = [r.stream_std for r in reports if r.stream_std is not None and math.isfinite(r.stream_std)]
    place, cls = _normalisation(list(table), kinds, [r.name for r in reports], classes or {}, post_norm)
    return Stream(
        blocks=len(reports), first=reports[0].name, last=reports[-1].name,
        gain_per_block=geometric_mean(gains), gains_measured=len(gains),
        branch_ratio_mean=statistics.fmean(branches) if branches else None,
        branch_ratio_first=with_branch[0].branch_ratio if with_branch else None,
        branch_ratio_last=with_branch[-1].branch_ratio if with_branch else None,
        std_first=reports[0].stream_std if reports[0].stream_std in stds else None,
        std_last=reports[-1].stream_std if reports[-1].stream_std in stds else None,
        normalisation=place, norm_class=cls,
    )


def flag_blocks(reports: list[BlockReport], verdict: str, vanishing: float, exploding: float) -> None:
    for r in reports:
        if verdict == "vanishing" and r.ratio_to_last < vanishing:
            r.flags.append("vanishing")
        if verdict == "exploding" and r.ratio_to_last > exploding:
            r.flags.append("exploding")


def _std_span(s: Stream) -> str:
    if s.std_first is None or s.std_last is None:
        return "the stream's std was not measured"
    return f"the stream's std goes from {short_number(s.std_first)} at the first block to {short_number(s.std_last)} at the last"


def normalisation_text(s: Stream) -> str:
    """What the normalisation does to the stream, in words and the stream's std."""
    cls = s.norm_class or "a norm layer"
    if s.normalisation == "pre":
        return (f"Pre-LN: each branch reads a normalised copy of the stream ({cls}) and the stream itself is "
                f"never normalised: {_std_span(s)}")
    if s.normalisation == "post":
        return (f"Post-LN: {cls} ends every block, so the stream is normalised after each block ({_std_span(s)}) "
                "and the backward signal passes through every norm on its way down")
    if s.normalisation == "inside":
        return f"normalisation ({cls}) sits inside the branches, not on the stream: {_std_span(s)}"
    return f"no normalisation layer in the blocks: {_std_span(s)}"


def branch_text(s: Stream) -> str:
    """The branch against the skip, from branch_ratio."""
    r = s.branch_ratio_mean
    if r is None:
        return ("the branch against the skip was not measured (no block's output had its input's shape, or "
                "no finite ||f(x)||/||x||)")
    ends = ""
    if s.branch_ratio_first is not None and s.branch_ratio_last is not None and s.blocks > 2:
        ends = f" ({short_number(s.branch_ratio_first)} at the first block, {short_number(s.branch_ratio_last)} at the last)"
    if r < BRANCH_IDENTITY:
        return (f"every block is almost the identity: ||f(x)||/||x|| = {short_number(r)} on average "
                "(zero-initialised branches, as Fixup, SkipInit and ReZero start), so the gradient passes along "
                "the skips unchanged")
    if r < BRANCH_LARGE:
        return (f"the branches are small beside the skip: ||f(x)||/||x|| = {short_number(r)} on average{ends}, so "
                "each block adds a small change to the stream and the skip carries the gradient")
    growth = math.sqrt(1 + r * r)
    return (f"the branches are a match for the skip: ||f(x)||/||x|| = {short_number(r)} on average{ends}, so each "
            f"block multiplies the stream's size by about sqrt(1 + r^2) = {short_number(growth)} instead of adding "
            "a small change to it")


def gain_text(s: Stream) -> str:
    if s.gain_per_block is None:
        return ("the gain per block was not measured (no gradient reached the blocks' inputs, or none reached "
                "their outputs)")
    some = f" of the {s.gains_measured} blocks measured" if s.gains_measured < s.blocks else ""
    return (f"each block multiplies it by {short_number(s.gain_per_block, 3)} on average (geometric mean of "
            f"block_gain = ||dL/dx||/||dL/dh||{some}, skip and branch together)")


def stream_cause(verdict: str, ratio: float, s: Stream, reports: list[BlockReport]) -> str:
    """The cause of a residual net's verdict in blocks (the caller handles a NaN or Inf first seen)."""
    tail = f"{branch_text(s)}; {normalisation_text(s)}."
    broken = next((r.name for r in reports if not math.isfinite(r.stream_grad_norm)), None)
    if broken is not None:
        return (f"the backward signal on the residual stream is NaN or Inf from block {broken!r} on: it overflowed; "
                f"{tail}")
    if ratio == 0:
        return f"no gradient reached the residual stream: ||dL/dh|| is 0 at the first block ({s.first!r}); {tail}"
    if math.isinf(ratio):
        return (f"no gradient reached the last block's output ({s.last!r}: ||dL/dh|| = 0) while the first block's "
                f"({s.first!r}) has one; {tail}")
    how = {"vanishing": "vanishes", "exploding": "grows", "healthy": "keeps its size"}[verdict]
    return (f"the backward signal on the residual stream {how} across {s.blocks} blocks: ||dL/dh|| at the first "
            f"block ({s.first!r}) over the last ({s.last!r}) = {short_number(ratio)}; {gain_text(s)}; {tail}")


def stream_notes(s: Stream, layers: int) -> list[str]:
    notes = []
    if layers:
        notes.append(f"the verdict reads the residual stream between the {s.blocks} blocks; the {layers} weight layers "
                     "inside and around them are in diagnosis.layers (and to_dict()['layers']), but their chain-rule "
                     "factors do not multiply to the stream's ratio: the skips carry the gradient around them.")
    if 0 < s.gains_measured < s.blocks:
        notes.append(f"block_gain was measured at {s.gains_measured} of {s.blocks} blocks: a block whose input needs "
                     "no gradient (the model's input itself) has none.")
    return notes

