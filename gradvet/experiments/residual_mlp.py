"""The residual MLP half of the `residual` experiment: blocks x + s W2 relu(W1 x) of width `WIDTH`
(`gradvet.models.residual`), four ways, at each depth L:

- unscaled: s = 1. The backward signal grows by sqrt(1 + G) = sqrt(2) per block
  (`residual_theory`), 2^((L-1)/2) over the stream;
- scaled: s = 1/sqrt(L), sqrt(1 + 1/L) per block, below sqrt(e) over any depth;
- zero_init: s = 1 with W2 = 0 (Fixup / SkipInit): every block starts as the identity, exactly 1;
- fixup: zero_init and W1 scaled by 1/sqrt(L) (Fixup's L^(-1/(2m-2)) for m = 2): at init the same,
  but the first SGD steps no longer move the L branches' sum L times as far as one
  (`gradvet.models.residual`);
- pre_ln: s = 1 with a LayerNorm before each branch (and before the read-out): per block
  sqrt(1 + G (1 - 2/n) / sigma_l^2), sigma_l^2 the measured variance of the block's input.

Per (variant, depth, seed): a snapshot at initialisation on a fixed batch (`residual_runs.snapshot`),
the growth per block measured, (||dL/dh_1|| / ||dL/dh_L||)^(1/(L-1)) (exactly the geometric mean of
block_gain over blocks 2..L, since each block's input is the block before's output), against the
prediction; how far the first SGD step moves the stream (`first_step_change`); then SGD training on
the data (digits by default) and the test accuracy, and whether it diverged (a NaN or Inf loss or
gradient).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.base.stats import finite_mean, geometric_mean
from gradvet.experiments.residual_runs import Snapshot, snapshot, train
from gradvet.experiments.residual_theory import branch_gain, growth, per_block, pre_ln_growth
from gradvet.models.residual import ResidualMLP, residual_mlp
from gradvet.train.loop import BatchSampler

WIDTH = 64
DEPTHS, QUICK_DEPTHS = (4, 8, 16, 32, 64), (4, 16)
STEPS, QUICK_STEPS = 300, 30
LR = 0.1
BATCH = 64
PROBE_BATCH = 256  # the fixed batch the snapshots read: the first PROBE_BATCH training examples
GAIN = branch_gain(2.0, 1.0)  # W1 ~ N(0, 2/n) before the ReLU, W2 ~ N(0, 1/m): G = 1


@dataclass(frozen=True)
class Variant:
    """One way to build the blocks: its label, whether s = 1/sqrt(L) (else 1), zero-initialised W2, Pre-LN."""

    label: str
    scaled: bool = False
    zero_init: bool = False
    fixup: bool = False
    pre_ln: bool = False

    def scale(self, depth: int) -> float:
        return 1.0 / math.sqrt(depth) if self.scaled else 1.0


VARIANTS: dict[str, Variant] = {
    "unscaled": Variant("s = 1"),
    "scaled": Variant("s = 1/sqrt(L)", scaled=True),
    "zero_init": Variant("zero-init W2 (SkipInit)", zero_init=True),
    "fixup": Variant("zero-init W2, W1/sqrt(L) (Fixup)", zero_init=True, fixup=True),
    "pre_ln": Variant("Pre-LN, s = 1", pre_ln=True),
}


def build(key: str, depth: int, n_in: int, n_out: int, seed: int, width: int = WIDTH) -> ResidualMLP:
    """The variant `key`'s residual MLP, initialised from `seed`."""
    v = VARIANTS[key]
    return residual_mlp(n_in, n_out, depth, width, scale=v.scale(depth), zero_init=v.zero_init,
                        fixup=v.fixup, norm="pre" if v.pre_ln else None, seed=seed)


def predicted_factors(key: str, depth: int, shot: Snapshot | None = None, width: int = WIDTH) -> list[float]:
    """The expected factor ||dL/dx_l|| / ||dL/dh_l|| of blocks l = 2..L at init (`residual_theory`); Pre-LN
    reads the stream's variance at each block's input (the block before's stream_std) from `shot`."""
    v = VARIANTS[key]
    if v.pre_ln:
        stds = shot.stream_std[:-1] if shot is not None else [None] * (depth - 1)  # the inputs of blocks 2..L
        return [pre_ln_growth(GAIN, s * s, width) if s is not None else math.nan for s in stds]
    return [growth(v.scale(depth), 0.0 if v.zero_init else GAIN)] * (depth - 1)


def predicted_growth(key: str, depth: int, shot: Snapshot | None = None, width: int = WIDTH) -> float:
    """The expected growth per block: the geometric mean of `predicted_factors` (nan if one is unknown)."""
    factors = predicted_factors(key, depth, shot, width)
    if not factors or not all(math.isfinite(f) for f in factors):
        return math.nan
    return geometric_mean(factors, default=math.nan)


def measure_at_init(key: str, depth: int, data, seed: int, width: int = WIDTH) -> tuple[ResidualMLP, Snapshot, dict[str, Any]]:
    """The net, its snapshot at init, and the numbers the tables show of it."""
    model = build(key, depth, data.n_features, data.n_classes, seed, width)
    loss_fn = nn.CrossEntropyLoss()
    shot = snapshot(model, (data.x_train[:PROBE_BATCH], data.y_train[:PROBE_BATCH]), loss_fn)
    numbers = {
        "verdict_init": shot.verdict, "ratio_init": shot.ratio,
        "growth_measured": per_block(shot.ratio, depth),
        "growth_predicted": predicted_growth(key, depth, shot, width),
        "predicted_factors_init": predicted_factors(key, depth, shot, width),
        "branch_ratio_init": finite_mean(shot.branch_ratio),
    }
    return model, shot, numbers


def first_step_change(model: ResidualMLP, batch, probe_x: torch.Tensor, lr: float = LR) -> float:
    """||h_L' - h_L|| / ||h_L||: how far one SGD step on `batch` moves the stream after the last block,
    h_L, on the inputs `probe_x` (a copy of the model takes the step; the model is left as it was)."""
    moved = copy.deepcopy(model)
    with torch.no_grad():
        before = moved.features(probe_x)
    optimizer = torch.optim.SGD(moved.parameters(), lr=lr)
    nn.CrossEntropyLoss()(moved(batch[0]), batch[1]).backward()
    optimizer.step()
    with torch.no_grad():
        after = moved.features(probe_x)
    return float(torch.linalg.vector_norm(after - before) / torch.linalg.vector_norm(before))


def run_one(key: str, depth: int, data, seed: int, steps: int) -> dict[str, Any]:
    """One (variant, depth, seed): numbers at init, the first step's move, then training."""
    model, shot, numbers = measure_at_init(key, depth, data, seed)
    sampler = BatchSampler(data.n_train, BATCH, torch.Generator().manual_seed(seed))

    def batches(_step: int):
        idx = sampler.next()
        return data.x_train[idx], data.y_train[idx]

    first = BatchSampler(data.n_train, BATCH, torch.Generator().manual_seed(seed)).next()  # training's first batch
    numbers["first_step_change"] = first_step_change(model, (data.x_train[first], data.y_train[first]),
                                                     data.x_train[:PROBE_BATCH])

    trained = train(model, torch.optim.SGD(model.parameters(), lr=LR), batches, nn.CrossEntropyLoss(), steps,
                    (data.x_test, data.y_test))
    numbers.update(test_accuracy=trained.test_accuracy, diverged_at=trained.diverged_at,
                   final_loss=trained.losses[-1] if trained.losses else math.nan,
                   grad_profile_init=shot.stream_grad_norm, branch_profile_init=shot.branch_ratio)
    return numbers


def check_data(data) -> None:
    if data.sequence or data.task == "regression":
        raise GradvetError(f"the residual experiment's MLP needs flat classification data (digits, mnist1d, mnist, "
                           f"an .npz); {data.name!r} is {'a sequence task' if data.sequence else data.task}.")
