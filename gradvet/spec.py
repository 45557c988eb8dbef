"""`RunSpec`: a frozen, hashable description of one training run.

Every remedy against vanishing or exploding gradients is a field: activation,
init, norm, residual, clip / clip_value (gradient clipping), weight_decay,
pretrain (greedy layer-wise autoencoder pre-training), tbptt (truncated
back-propagation through time), model = lstm / gru. `spec.key` is a stable
hash of the content, so a store can key runs by it and a sweep can resume.
`monitor` watches the run with `gradvet.Monitor` (early-warning alerts; it
changes no bit of training): a field added later, so its default is left out of
the key and the runs stored before it keep their keys (KEY_NEUTRAL).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from gradvet.base import validation
from gradvet.base.errors import GradvetError, unknown
from gradvet.models.init import SCHEMES as INITS
from gradvet.models.init import canonical, check_scheme
from gradvet.models.mlp import NORMS
from gradvet.models.rnn import KINDS as RECURRENT

# The models' option lists live with the models (INITS, NORMS, the recurrent kinds); an init may also be
# the parametrised "gaussian:sw2=S,sb2=B" (W ~ N(0, S/n_in), b ~ N(0, B); gradvet.models.init), kept in
# its canonical spelling so equal variances give equal keys. Optimisers and losses are named here and
# made by gradvet.train.optim.
MODELS = ("mlp", *RECURRENT)
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
LOSSES = ("auto", "cross_entropy", "sigmoid_cross_entropy", "mse")
# Fields added after runs were stored, each with the value that leaves a key as it was: at that value
# the field is left out of the hashed content (`RunSpec.key`), so every earlier key stays valid.
KEY_NEUTRAL = {"monitor": False}


@dataclass(frozen=True)
class RunSpec:
    """One training run. Defaults: a depth-4, width-64 ReLU MLP with He init on digits.

    data: dataset name or path (see `gradvet.data.load`); data_options: extra
    loader options as (name, value) pairs (e.g. (("length", 50),) for the
    adding problem). activation: a catalog name or formula; activation_params
    its parameters as (name, value) pairs. steps: optimiser steps; eval_every:
    steps between test evaluations (0: only at the end). pretrain: steps of
    greedy layer-wise autoencoder pre-training per hidden layer (0: none).
    tbptt: truncation length for RNNs (None: full BPTT). loss: auto (cross-entropy
    for classification, mse for regression), cross_entropy (softmax read-out),
    sigmoid_cross_entropy (Nielsen's cost: sigmoid output units, per-unit
    cross-entropy against the one-hot label, summed over units) or mse.
    monitor: watch every step with `gradvet.Monitor` and keep its alerts with the run.
    """

    data: str = "digits"
    model: str = "mlp"
    activation: str = "relu"
    depth: int = 4
    width: int = 64
    init: str = "he"  # one of INITS, or "gaussian:sw2=S,sb2=B"
    norm: str | None = None
    residual: bool = False
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 64
    steps: int = 500
    clip: float | None = None
    clip_value: float | None = None
    weight_decay: float = 0.0
    pretrain: int = 0
    tbptt: int | None = None
    seed: int = 0
    loss: str = "auto"
    eval_every: int = 50
    activation_params: tuple[tuple[str, float], ...] = ()
    data_options: tuple[tuple[str, Any], ...] = field(default=())
    monitor: bool = False

    def __post_init__(self) -> None:
        # Normalise containers so equal specs hash equally whatever they were built from.
        for name in ("activation_params", "data_options"):
            value = getattr(self, name)
            if isinstance(value, dict):
                value = value.items()
            object.__setattr__(self, name, tuple(sorted((str(k), v) for k, v in value)))
        if isinstance(self.init, str) and self.init.split(":", 1)[0].strip() == "gaussian":
            object.__setattr__(self, "init", canonical(self.init))  # a bad string: its own clear error
        validate(self)

    @property
    def key(self) -> str:
        """Stable content hash: sha256 of the canonical JSON of every field (those of KEY_NEUTRAL
        left out at their neutral value), 16 hex digits."""
        content = {k: v for k, v in self.to_dict().items() if not (k in KEY_NEUTRAL and v == KEY_NEUTRAL[k])}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["activation_params"] = dict(self.activation_params)
        data["data_options"] = dict(self.data_options)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """A RunSpec from a mapping; unknown field names get a clear error with close matches."""
        known = field_names()
        for name in data:
            if name not in known:
                raise unknown("run field", name, known)
        return cls(**data)

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """A short human label: 'mlp relu d4 w64 he sgd lr=0.1 seed=0' plus active remedies."""
        parts = [self.model, self.activation, f"d{self.depth}", f"w{self.width}", self.init]
        if self.norm:
            parts.append(f"{self.norm}norm")
        if self.residual:
            parts.append("residual")
        if self.pretrain:
            parts.append(f"pretrain{self.pretrain}")
        if self.clip is not None:
            parts.append(f"clip{self.clip:g}")
        if self.clip_value is not None:
            parts.append(f"clipv{self.clip_value:g}")
        if self.weight_decay:
            parts.append(f"wd{self.weight_decay:g}")
        if self.tbptt:
            parts.append(f"tbptt{self.tbptt}")
        parts += [self.optimizer, f"lr={self.lr:g}", f"seed={self.seed}"]
        if self.monitor:
            parts.append("monitored")
        return " ".join(parts)


def field_names() -> list[str]:
    return [f.name for f in fields(RunSpec)]


def _init(value: Any) -> None:
    """One of INITS, or a valid "gaussian:sw2=S,sb2=B" (parsed by gradvet.models.init)."""
    if value not in INITS:
        check_scheme(value)


def validate(spec: RunSpec) -> None:
    """Check every field against gradvet.base.validation's rules and limits; one GradvetError naming the
    first bad one."""
    validation.choice("model", spec.model, MODELS)
    _init(spec.init)
    validation.choice("norm", spec.norm, NORMS)
    validation.choice("optimizer", spec.optimizer, OPTIMIZERS)
    validation.choice("loss", spec.loss, LOSSES)
    if not isinstance(spec.data, str) or not spec.data:
        raise validation.not_allowed("data", spec.data, "a dataset name or a path")
    if not isinstance(spec.activation, str) or not spec.activation:
        raise validation.not_allowed("activation", spec.activation, "a catalog name or a formula")
    validation.architecture(spec.depth, spec.width, spec.batch_size)
    validation.steps("steps", spec.steps)
    validation.steps("pretrain", spec.pretrain)
    validation.steps("eval_every", spec.eval_every)
    validation.seed("seed", spec.seed)
    validation.positive_number("lr", spec.lr)
    validation.finite_number("momentum", spec.momentum, low=0.0)
    validation.finite_number("weight_decay", spec.weight_decay, low=0.0)
    validation.optional(validation.positive_number, "clip", spec.clip)
    validation.optional(validation.positive_number, "clip_value", spec.clip_value)
    validation.optional(validation.whole_number, "tbptt", spec.tbptt, 1)
    validation.boolean("residual", spec.residual)
    validation.boolean("monitor", spec.monitor)
    if spec.tbptt is not None and spec.model == "mlp":
        raise GradvetError("tbptt is for recurrent models; allowed with model = rnn, lstm or gru.")
    if spec.pretrain and spec.model != "mlp":
        raise GradvetError("pretrain (greedy layer-wise autoencoders) is for model = mlp.")
