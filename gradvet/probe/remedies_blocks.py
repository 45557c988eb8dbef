"""Remedies for a residual net (a diagnosis read from the stream, `probe.diagnosis_blocks`),
ranked for the case at hand, each tied to its evidence.

Exploding: scale each branch by 1/sqrt(L) (Hanin & Rolnick 2018: the stream's variance then
grows by (1 + 1/L) per block, e over the stack, instead of 2^L), initialise each branch's last
layer to zero so that every block starts as the identity (Fixup, Zhang et al. 2019; SkipInit,
De & Smith 2020; ReZero, Bachlechner et al. 2020), normalise the branch input rather than the
stream (Pre-LN, Xiong et al. 2020), and clip the gradient norm (Pascanu et al. 2013).
Vanishing: Pre-LN instead of Post-LN (Post-LN's gradient shrinks toward the input; Liu et al.
2020), and an identity skip with nothing on it. Dead or saturated units: as for any net
(`remedies.unit_remedies`).
"""

from __future__ import annotations

import math
import statistics

from gradvet.base.formatting import short_number
from gradvet.probe.remedies import Remedy, total_grad_norms, unit_remedies
from gradvet.probe.thresholds import BRANCH_IDENTITY, BRANCH_LARGE, GROWING_BLOCK_GAIN, SHRINKING_BLOCK_GAIN
from gradvet.probe.trace import Trace


def _evidence(s) -> str:
    """The branch ratio and the gain per block, as far as they were measured."""
    parts = []
    if s.branch_ratio_mean is not None:
        parts.append(f"the branches are {short_number(s.branch_ratio_mean)} times the stream's size on average "
                     "(||f(x)||/||x||)")
    if s.gain_per_block is not None:
        parts.append(f"each block multiplies the backward signal by {short_number(s.gain_per_block, 3)}")
    return " and ".join(parts) if parts else f"the ratio across the {s.blocks} blocks is out of bounds"


def _clip(trace: Trace) -> Remedy:
    norms = [v for v in total_grad_norms(trace) if math.isfinite(v)]
    if not norms:
        return Remedy("clip the gradient norm (e.g. at 1.0)",
                      "every recorded gradient norm was NaN or Inf: no finite norm to read a threshold from.")
    threshold = statistics.median(norms)
    return Remedy(f"clip the gradient norm at {threshold:.3g}",
                  f"the median total gradient norm observed is {threshold:.3g} and the largest {max(norms):.3g}; "
                  "clipping at the median bounds the steps that blow up (Pascanu et al. 2013).")


def suggest_for_blocks(d, trace: Trace, main_act: str | None) -> list[Remedy]:
    """The remedies for diagnosis `d` of a residual net (`d.stream` set), most promising first."""
    s = d.stream
    remedies: list[Remedy] = []
    scale = 1 / math.sqrt(s.blocks)
    large = s.branch_ratio_mean is not None and s.branch_ratio_mean >= BRANCH_LARGE
    growing = s.gain_per_block is not None and s.gain_per_block > GROWING_BLOCK_GAIN
    identity = s.branch_ratio_mean is not None and s.branch_ratio_mean < BRANCH_IDENTITY
    if d.verdict == "exploding":
        if large or growing or not identity:
            remedies.append(Remedy(
                f"scale each residual branch by 1/sqrt(L) = {scale:.2g} (L = {s.blocks} blocks): h = x + f(x)/sqrt(L)",
                f"{_evidence(s)}: branches as large as the stream multiply it at every block; scaled by 1/sqrt(L) "
                f"the {s.blocks} branches add up to about the size of one, and the stream's variance grows by "
                "(1 + 1/L) per block, about e over the stack (Hanin & Rolnick 2018)."))
            remedies.append(Remedy(
                "initialise the last layer of each branch to zero (Fixup, SkipInit, ReZero)",
                "every block then starts as the identity (branch_ratio 0, block_gain 1) and the gradient reaches the "
                "first block unchanged; the branches grow as they learn (Zhang et al. 2019; De & Smith 2020; "
                "Bachlechner et al. 2020)."))
        if s.normalisation in ("none", "inside"):
            remedies.append(Remedy(
                "normalise each branch's input (Pre-LN: h = x + f(LayerNorm(x)))",
                "the branch then sees the stream at unit scale however large the stream has grown, so its output "
                "stops growing with depth (Xiong et al. 2020)."))
        elif s.normalisation == "post":
            remedies.append(Remedy(
                "move the normalisation to the branch input (Pre-LN: h = x + f(LN(x)) instead of LN(x + f(x)))",
                "with Post-LN the gradient near the output is large at initialisation and passes every block's norm "
                "on its way down, which needs a learning-rate warm-up (Xiong et al. 2020)."))
        remedies.append(_clip(trace))
    elif d.verdict == "vanishing":
        if s.normalisation == "post":
            remedies.append(Remedy(
                "move the normalisation to the branch input (Pre-LN: h = x + f(LN(x)) instead of LN(x + f(x)))",
                "with Post-LN every block's norm sits on the stream and divides the gradient on its way down, so the "
                "first blocks get the least (Liu et al. 2020; Xiong et al. 2020); with Pre-LN the skips carry it "
                "to the first block unchanged."))
        if s.gain_per_block is not None and s.gain_per_block < SHRINKING_BLOCK_GAIN:
            remedies.append(Remedy(
                "keep the skip an identity: h = x + f(x), with no factor, norm or projection on the x path",
                f"each block passes only {short_number(s.gain_per_block, 3)} of the backward signal down; an identity "
                "skip alone passes all of it (dL/dx = dL/dh + J_f^T dL/dh)."))
        remedies.append(Remedy(
            "initialise the last layer of each branch to zero (Fixup, SkipInit, ReZero)",
            "every block then starts as the identity and passes the gradient down unchanged (Zhang et al. 2019; "
            "De & Smith 2020)."))
    return remedies + unit_remedies(d, main_act)
