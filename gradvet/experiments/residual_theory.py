"""What theory expects of the backward signal on a residual stream at initialisation, block by block.

A block h = x + s f(x), f(x) = W2 relu(W1 n(x)), sends back dL/dx = g + s J_f^T g, g = dL/dh. With
W1 (m x n) ~ N(0, a/n), W2 (n x m) ~ N(0, b/m) and n the identity:

    E||J_f^T g||^2 = E||W1^T D W2^T g||^2 = (n a/n) (1/2) (m b/m) ||g||^2 = (a b / 2) ||g||^2 =: G ||g||^2,

since E||W2^T g||^2 = m (b/m) ||g||^2, the ReLU mask D keeps each unit with probability 1/2
(W1 x is symmetric about 0), and E||W1^T u||^2 = n (a/n) ||u||^2. The cross term 2 s g.J_f^T g has
mean 0 (W2 has mean 0 and, to leading order in 1/width, is independent of g: the mean-field
"gradient independence" assumption), so per block

    E||dL/dx||^2 / E||dL/dh||^2 = 1 + s^2 G                                      (`growth`, squared)

and over the L - 1 blocks between the last block's output and the first's, ||dL/dh_1|| / ||dL/dh_L||
is about (1 + s^2 G)^((L-1)/2). He initialisation of each layer for what follows it (a = 2 before a
ReLU, b = 1 before nothing: `gradvet.models.residual`) gives G = 1: unscaled (s = 1) the signal grows
by sqrt(2) per block, 2^((L-1)/2) over the stream (1.8e9 at L = 64); s = 1/sqrt(L) gives
(1 + 1/L)^((L-1)/2) < sqrt(e) = 1.65 at any depth; a zero-initialised W2 gives G = 0, exactly 1.
The forward pass obeys the same law: E||h||^2 = (1 + s^2 G) ||x||^2 per block.

Hanin & Rolnick (2018, "How to start training: the effect of initialization and architecture",
NeurIPS) identify this as their first failure mode in ResNets, a mean activation length exponential in
depth, and show it is avoided "by correctly scaling the residual modules" (their abstract: the one part
of the paper that could be checked here; the theorem's exact form was not available, so nothing below
rests on it). In this parametrisation the statement is the product above: with scales s_l the mean
squared length, forward and backward, multiplies by prod_l (1 + s_l^2 G) <= exp(G sum_l s_l^2), bounded
at any depth iff sum_l s_l^2 is (s_l = 1/sqrt(L): the sum is 1).

Pre-LN, h = x + s f(LN(x)): LayerNorm's Jacobian at init (gain 1, shift 0) is
(1/sigma) (I - 11^T/n - y y^T/n), which removes two of n directions and divides by the stream's
per-sample std sigma, so per block 1 + s^2 G (1 - 2/n) / sigma^2, where sigma^2 is the variance of
the block's input (`pre_ln_growth`: the stream's variance is measured, the rest is the formula).
The stream's variance grows by about s^2 G_fwd per block (a branch reading unit-variance entries),
so the per-block factor falls like 1 + 1/l and the product grows like sqrt(L), not exponentially.
"""

from __future__ import annotations

import math


def branch_gain(w1_variance_times_fan_in: float, w2_variance_times_fan_in: float) -> float:
    """G = a b / 2: E||J_f^T g||^2 / ||g||^2 of a ReLU branch W2 relu(W1 .) with W1 ~ N(0, a/fan_in),
    W2 ~ N(0, b/fan_in) (the derivation is in the module docstring)."""
    return w1_variance_times_fan_in * w2_variance_times_fan_in / 2.0


def growth(scale: float, gain: float) -> float:
    """sqrt(1 + s^2 G): the expected factor ||dL/dx|| / ||dL/dh|| of one block (root of the ratio
    of the mean squares) with branch scale s and branch gain G."""
    return math.sqrt(1.0 + scale * scale * gain)


def pre_ln_growth(gain: float, stream_variance: float, width: int, scale: float = 1.0) -> float:
    """sqrt(1 + s^2 G (1 - 2/n) / sigma^2): one Pre-LN block's expected factor, sigma^2 the variance of
    its input on the stream (n = width)."""
    if not (stream_variance > 0 and math.isfinite(stream_variance)):
        return math.nan
    return math.sqrt(1.0 + scale * scale * gain * (1.0 - 2.0 / width) / stream_variance)


def per_block(ratio: float, blocks: int) -> float:
    """The factor per block of a ratio over the stream: ratio^(1/(blocks - 1)) (the ratio of the first
    block's ||dL/dh|| over the last's spans blocks - 1 block gains); nan for fewer than two blocks or
    a ratio that is not a positive finite number."""
    if blocks < 2 or not (ratio > 0 and math.isfinite(ratio)):
        return math.nan
    return math.exp(math.log(ratio) / (blocks - 1))

