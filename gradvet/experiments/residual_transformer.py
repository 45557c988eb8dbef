"""The transformer half of the `residual` experiment: Post-LN against Pre-LN stacks of PyTorch's
nn.TransformerEncoderLayer (`gradvet.models.residual.TokenTransformer`: d_model 32, 2 heads,
feed-forward 64, no dropout, PyTorch's own init) on a token task generated here: reverse a sequence
of LENGTH tokens drawn uniformly from VOCAB symbols (the target at position i is the token at
LENGTH - 1 - i; every position must attend to its mirror, so the skips alone cannot solve it; chance
is 1/VOCAB per token).

Per (variant, depth, seed): snapshots of the residual stream (`residual_runs.snapshot`) at init and
after Adam training (no warm-up: the setting in which Post-LN's trouble was reported, Xiong et al.
2020, "On layer normalization in the Transformer architecture"), on one fixed batch: the stream's
gradient per block and its first/last ratio, and branch_ratio ||h_l - x_l|| / ||x_l|| per block with
its Spearman correlation against the block's depth. In Pre-LN, x_{l+1} = x_l + F(LN(x_l)): the
branches read normalised copies, their outputs keep their size while the stream they add to grows,
so branch_ratio falls with depth (a negative correlation). In Post-LN, x_{l+1} = LN(x_l + F(x_l)):
the stream is renormalised every block and the backward signal passes each LayerNorm's Jacobian.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gradvet.experiments.residual_runs import Snapshot, snapshot, train
from gradvet.experiments.residual_theory import per_block
from gradvet.models.residual import TokenTransformer, token_transformer

VOCAB, LENGTH = 10, 12
D_MODEL, HEADS, FEEDFORWARD = 32, 2, 64
DEPTHS, QUICK_DEPTHS = (6, 12, 24, 48), (6, 12)
STEPS, QUICK_STEPS = 300, 20
LR = 1e-3  # Adam, constant (no warm-up)
BATCH, PROBE_BATCH, TEST = 64, 256, 512
PROBE_SEED, TEST_SEED = 10_000, 20_000  # generators of the fixed batches, apart from the training seeds

VARIANTS: dict[str, str] = {"post_ln": "Post-LN", "pre_ln": "Pre-LN"}  # norm_first False / True


def reverse_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences of LENGTH tokens in [0, VOCAB) and their reversals."""
    ids = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
    return ids, ids.flip(1)


def build(key: str, depth: int, seed: int) -> TokenTransformer:
    return token_transformer(VOCAB, LENGTH, depth, D_MODEL, HEADS, FEEDFORWARD, norm_first=key == "pre_ln", seed=seed)


def spearman(values: list[float | None]) -> float:
    """Spearman's rank correlation of the values against their position (scipy; nan when fewer than
    three finite values or all equal)."""
    from scipy.stats import spearmanr

    pairs = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(pairs) < 3 or len({v for _, v in pairs}) < 2:
        return math.nan
    return float(spearmanr([i for i, _ in pairs], [v for _, v in pairs]).statistic)


def _stream(shot: Snapshot, when: str, depth: int) -> dict[str, Any]:
    return {f"verdict_{when}": shot.verdict, f"ratio_{when}": shot.ratio,
            f"growth_{when}": per_block(shot.ratio, depth), f"branch_spearman_{when}": spearman(shot.branch_ratio),
            f"grad_profile_{when}": shot.stream_grad_norm, f"branch_profile_{when}": shot.branch_ratio,
            f"normalisation_{when}": shot.normalisation}


def run_one(key: str, depth: int, seed: int, steps: int) -> dict[str, Any]:
    """One (variant, depth, seed): the stream at init, training, the stream after it."""
    model = build(key, depth, seed)
    loss_fn = nn.CrossEntropyLoss()
    probe_batch = reverse_batch(PROBE_BATCH, torch.Generator().manual_seed(PROBE_SEED + seed))
    test = reverse_batch(TEST, torch.Generator().manual_seed(TEST_SEED + seed))
    numbers = _stream(snapshot(model, probe_batch, loss_fn), "init", depth)
    generator = torch.Generator().manual_seed(seed)
    trained = train(model, torch.optim.Adam(model.parameters(), lr=LR), lambda _step: reverse_batch(BATCH, generator),
                    loss_fn, steps, test)
    numbers.update(_stream(snapshot(model, probe_batch, loss_fn), "trained", depth))
    numbers.update(test_accuracy=trained.test_accuracy, diverged_at=trained.diverged_at,
                   final_loss=trained.losses[-1] if trained.losses else math.nan)
    return numbers
