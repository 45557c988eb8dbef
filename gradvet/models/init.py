"""Weight initialisation schemes, each with the variance it promises.

For a linear layer with n_in inputs and n_out outputs:
- normal: W, b ~ N(0, 1) (the article's and Nielsen's "large weight" start)
- nielsen: W ~ N(0, 1/n_in), b ~ N(0, 1) (Nielsen, NNDL ch. 3)
- xavier: W ~ U[-a, a], a = sqrt(6/(n_in + n_out)), Var = 2/(n_in + n_out), b = 0 (Glorot & Bengio 2010)
- he: W ~ N(0, 2/n_in), b = 0 (He et al. 2015)
- lecun: W ~ N(0, 1/n_in), b = 0 (LeCun et al. 1998; SELU's init)
- orthogonal: W with orthonormal rows or columns, b = 0 (Saxe et al. 2014)
- lsuv: orthogonal, then each layer's weights rescaled in turn until its
  pre-activation output has unit variance on a data batch (Mishkin & Matas 2016)
- critical: W ~ N(0, sw2*/n_in), b = 0, with sw2* the edge of chaos of the activation
  (chi1 = 1 at sb2 = 0; Schoenholz et al. 2017; `gradvet.theory.critical_sw2`)
- gaussian:sw2=S,sb2=B: W ~ N(0, S/n_in), b ~ N(0, B), any point of the mean-field
  phase diagram (Poole et al. 2016; Schoenholz et al. 2017); S > 0, B >= 0, sb2
  optional (default 0), e.g. "gaussian:sw2=1.5,sb2=0.05" (`parse_gaussian`)
- default: PyTorch's own (U[-1/sqrt(n_in), 1/sqrt(n_in)], Glorot's "standard")
Normalisation layers keep weight 1 and bias 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradvet.base import validation
from gradvet.base.errors import GradvetError, unknown

SCHEMES = ("normal", "nielsen", "xavier", "he", "lecun", "orthogonal", "lsuv", "critical", "default")
GAUSSIAN = "gaussian"  # the one parametrised scheme: "gaussian:sw2=S,sb2=B"
GAUSSIAN_FORM = "gaussian:sw2=S,sb2=B"
GAUSSIAN_EXAMPLE = "gaussian:sw2=1.5,sb2=0.05"
ALLOWED = ", ".join((*SCHEMES, GAUSSIAN_FORM))
LSUV_TOL = 0.01
LSUV_MAX_ITER = 20


def is_gaussian(scheme: object) -> bool:
    """True for "gaussian" and "gaussian:..." (whether or not the parameters are valid)."""
    return isinstance(scheme, str) and scheme.split(":", 1)[0].strip() == GAUSSIAN


def parse_gaussian(scheme: str) -> tuple[float, float]:
    """(sw2, sb2) of "gaussian:sw2=S,sb2=B" (sb2 optional, default 0; spaces around parts allowed).

    Only plain numbers are read (Python's float(), never eval); sw2 must be finite and > 0,
    sb2 finite and >= 0. Anything else is a GradvetError naming the bad part.
    """
    head, colon, body = scheme.partition(":")
    where = f"init={scheme!r}"
    if head.strip() != GAUSSIAN:
        raise GradvetError(f"{where} is not a gaussian init; write {GAUSSIAN_FORM}, e.g. {GAUSSIAN_EXAMPLE!r}.")
    if not colon or not body.strip():
        raise GradvetError(f"{where} needs its weight variance: write {GAUSSIAN_FORM} (W ~ N(0, S/n_in), "
                           f"b ~ N(0, B), sb2 optional), e.g. {GAUSSIAN_EXAMPLE!r}.")
    values: dict[str, float] = {}
    for part in body.split(","):
        name, equals, text = (p.strip() for p in part.partition("="))
        if not equals:
            what = repr(part.strip()) if part.strip() else "an empty part"
            raise GradvetError(f"{where}: {what} is not name=value; write {GAUSSIAN_FORM}, e.g. {GAUSSIAN_EXAMPLE!r}.")
        if name not in ("sw2", "sb2"):
            raise unknown("parameter", name, "sw2 (weight variance times n_in, > 0) and sb2 (bias variance, >= 0)",
                          choices=("sw2", "sb2"), context=where)
        if name in values:
            raise GradvetError(f"{where}: {name} is given twice; give each of sw2 and sb2 at most once.")
        allowed = "a finite number " + ("> 0" if name == "sw2" else ">= 0")
        try:
            value = float(text)
        except ValueError:
            raise GradvetError(f"{where}: {validation.not_allowed(name, text, allowed, why='not a number')}") from None
        if not (math.isfinite(value) and (value > 0 if name == "sw2" else value >= 0)):
            raise GradvetError(f"{where}: {validation.not_allowed(name, text, allowed)}")
        values[name] = value
    if "sw2" not in values:
        raise GradvetError(f"{where} has no sw2; write {GAUSSIAN_FORM} (sw2 > 0 required, sb2 >= 0 optional), "
                           f"e.g. {GAUSSIAN_EXAMPLE!r}.")
    return values["sw2"], values.get("sb2", 0.0)


def gaussian(sw2: float, sb2: float = 0.0) -> str:
    """The canonical init string for W ~ N(0, sw2/n_in), b ~ N(0, sb2): "gaussian:sw2=1.5,sb2=0.05"
    (shortest round-trip float text, so equal variances give equal strings and equal spec keys)."""
    text = f"{GAUSSIAN}:sw2={float(sw2)!r},sb2={float(sb2)!r}"
    parse_gaussian(text)  # the same checks as for a typed string
    return text


def canonical(scheme: str) -> str:
    """`scheme` itself, or for a gaussian init its canonical spelling (`gaussian`)."""
    return gaussian(*parse_gaussian(scheme)) if is_gaussian(scheme) else scheme


def check_scheme(scheme: object) -> None:
    """A GradvetError unless `scheme` is one of SCHEMES or a valid gaussian:sw2=S,sb2=B."""
    if is_gaussian(scheme):
        parse_gaussian(scheme)
        return
    if scheme not in SCHEMES:
        name = scheme.split(":", 1)[0].strip() if isinstance(scheme, str) else str(scheme)
        raise unknown("init", scheme, ALLOWED, choices=(*SCHEMES, GAUSSIAN), spelled=name)


def _linear_init(layer: nn.Linear, scheme: str, sw2: float | None = None, sb2: float = 0.0) -> None:
    w = layer.weight
    b = layer.bias if layer.bias is not None else torch.empty(0)  # a bias-free layer: nothing to set
    n_out, n_in = w.shape
    with torch.no_grad():
        if scheme == "normal":
            w.normal_(0.0, 1.0)
            b.normal_(0.0, 1.0)
        elif scheme == "nielsen":
            w.normal_(0.0, 1.0 / math.sqrt(n_in))
            b.normal_(0.0, 1.0)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(w)
            b.zero_()
        elif scheme == "he":
            nn.init.kaiming_normal_(w, nonlinearity="relu")
            b.zero_()
        elif scheme == "lecun":
            w.normal_(0.0, 1.0 / math.sqrt(n_in))
            b.zero_()
        elif scheme == "critical":
            w.normal_(0.0, math.sqrt(sw2 / n_in))
            b.zero_()
        elif scheme == GAUSSIAN:
            w.normal_(0.0, math.sqrt(sw2 / n_in))
            if sb2 > 0:
                b.normal_(0.0, math.sqrt(sb2))
            else:
                b.zero_()
        elif scheme in ("orthogonal", "lsuv"):
            nn.init.orthogonal_(w)
            b.zero_()
        elif scheme == "default":
            layer.reset_parameters()


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer with a `weight` matrix: Linear, and recurrent cells' input/hidden maps."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def critical_variance(activation) -> float:
    """sw2 at the edge of chaos (sb2 = 0) for `activation`, or a clear error where there is none."""
    from gradvet.theory import critical_sw2

    sw2 = critical_sw2(activation)
    if sw2 is None:
        raise GradvetError(
            f"init='critical': {activation.name} has no edge of chaos at sb2 = 0 (chi1 does not pass through 1 "
            "at a fixed point the signal reaches, for sw2 in [0.01, 100]); choose another init, such as he or lsuv."
        )
    return sw2


def initialise(model: nn.Module, scheme: str, data: torch.Tensor | None = None, activation=None) -> nn.Module:
    """Initialise every linear layer of `model` with `scheme`; `lsuv` also needs `data`,
    `critical` the activation; "gaussian:sw2=S,sb2=B" carries its own variances."""
    check_scheme(scheme)
    sw2, sb2 = None, 0.0
    if is_gaussian(scheme):
        sw2, sb2 = parse_gaussian(scheme)
        scheme = GAUSSIAN
    elif scheme == "critical":
        if activation is None:
            raise GradvetError("init='critical' needs the activation, to find its edge of chaos.")
        sw2 = critical_variance(activation)
    for _, layer in linear_layers(model):
        _linear_init(layer, scheme, sw2, sb2)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, (nn.LSTMCell, nn.GRUCell)):
            _recurrent_init(module, scheme, sw2, sb2)
    if scheme == "lsuv":
        if data is None:
            raise GradvetError("init='lsuv' is data-driven: pass a batch of inputs (data=...).")
        lsuv(model, data)
    return model


def _recurrent_init(cell: nn.Module, scheme: str, sw2: float | None = None, sb2: float = 0.0) -> None:
    """Gate matrices of LSTM/GRU cells: each gate's block initialised like a linear layer
    (gaussian: each block N(0, sw2/n_in), every bias N(0, sb2))."""
    if scheme == "default":
        cell.reset_parameters()
        return
    for name, param in cell.named_parameters():
        with torch.no_grad():
            if name.startswith("bias"):
                if scheme in ("normal", "nielsen"):
                    param.normal_(0.0, 1.0)
                elif scheme == GAUSSIAN and sb2 > 0:
                    param.normal_(0.0, math.sqrt(sb2))
                else:
                    param.zero_()
                continue
            gates = param.shape[0] // cell.hidden_size
            for block in param.chunk(gates, dim=0):
                fake = nn.Linear(block.shape[1], block.shape[0])
                like = "orthogonal" if scheme == "lsuv" else "lecun" if scheme == "critical" else scheme
                _linear_init(fake, like, sw2)
                block.copy_(fake.weight)


def lsuv(model: nn.Module, data: torch.Tensor, tol: float = LSUV_TOL, max_iter: int = LSUV_MAX_ITER) -> None:
    """Layer-sequential unit variance: for each linear layer in forward order, scale its
    weights (and bias) until the variance of its output on `data` is 1 within `tol`."""
    layers = [m for _, m in linear_layers(model)]
    was_training = model.training
    model.eval()
    try:
        for layer in layers:
            seen: dict[str, torch.Tensor] = {}
            handle = layer.register_forward_hook(lambda m, i, o, seen=seen: seen.__setitem__("out", o.detach()))
            try:
                for _ in range(max_iter):
                    with torch.no_grad():
                        model(data)
                    var = float(seen["out"].var()) if "out" in seen else 1.0
                    if not math.isfinite(var) or var <= 0 or abs(var - 1.0) < tol:
                        break
                    with torch.no_grad():
                        layer.weight.div_(math.sqrt(var))
                        if layer.bias is not None:
                            layer.bias.div_(math.sqrt(var))
            finally:
                handle.remove()
    finally:
        model.train(was_training)
