"""The initialisation that matches an activation: the one home of that rule.

Through one layer of width n the backward signal's variance is multiplied by
n Var(W) E[f'(z)^2] (He et al. 2015, eq. 9; mean-field theory's chi1 = sw2 E[f'(sqrt(q*) z)^2],
Poole et al. 2016, with sw2 = n Var(W)), so an init matches f when sw2 is about 1 / E[f'(z)^2]:

- ReLU family -> he, Var(W) = 2 / n_in: f' is about 1 for z > 0 and about 0 for z < 0, so
  E[f'^2] is about 1/2 and the factor 2 keeps the signal's size (He et al. 2015). The smooth
  members (elu, gelu, silu, mish, softplus, ...) are ReLU-shaped and take the same init.
  softplus too, measured rather than assumed: its f' = sigmoid(z) tends to a step as the inputs
  grow, E[sigmoid(z)^2] = 0.293 at unit variance and 1/2 in the limit, so mean-field chi1 is
  0.29 at sw2 = 1 (Xavier: ordered, the gradient shrinks about 3.5x per layer) and tends to 1 at
  sw2 = 2 (`gradvet.theory.critical_sw2("softplus")` = 2, its edge of chaos); in a width-256 net
  at depth 16, delta_1/delta_L is 1.4e-4 with Xavier against 0.21 with He.
- selu -> lecun, Var(W) = 1 / n_in: the condition under which SELU's fixed point (mean 0,
  variance 1) attracts (Klambauer et al. 2017, "Self-Normalizing Neural Networks").
- tanh and sigmoid families -> xavier, Var(W) = 2 / (n_in + n_out) (Glorot & Bengio 2010; 1 / n
  for square layers): derived for activations that are linear with slope 1 near 0 (tanh's edge
  of chaos at sb2 = 0 is sw2 = 1), the standard init of the family; no init repairs sigmoid's
  f' <= 1/4, which is the article's point.
- anything else (the shrink and other families, formulas, registered activations): no documented
  pairing, None; `gradvet.choose` then initialises at the edge of chaos or with LSUV.
"""

from __future__ import annotations

from gradvet.activations.core import Activation

BY_FAMILY = {"relu": "he", "tanh": "xavier", "sigmoid": "xavier"}
BY_NAME = {"selu": "lecun"}  # catalog members whose init differs from their family's


def matching_init(act: Activation) -> str | None:
    """The init scheme (a `gradvet.models.init` name) matched to a catalog activation, or None when
    the catalog documents none (see the module docstring for the rule and the evidence)."""
    if act.source != "catalog":
        return None
    return BY_NAME.get(act.name, BY_FAMILY.get(act.family))
