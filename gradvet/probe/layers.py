"""Which modules of a model a probe watches, and what kind each is.

- weight layers: modules with their own parameters (Linear, Conv, RNN/LSTM/GRU
  and their cells, Embedding, normalisation layers); their backward gain
  ||dL/d input|| / ||dL/d output|| is the article's weight factor;
- activations: parameter-free elementwise modules (nn.ReLU, nn.Tanh, ...,
  gradvet's own ActivationModule, and any other class whose values match a
  catalog entry: Hugging Face's GELU classes, a user's Swish; see
  `activations.identify`); their gain is the activation-derivative factor,
  and their input z gives f'(z) for the saturation and dead counts.
Containers (Sequential, blocks) are not watched: their children are.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gradvet.activations import Activation, ActivationModule, activation
from gradvet.activations.identify import identify_module

# PyTorch activation modules -> catalog names (parameters read off the module).
_TORCH_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu", nn.SiLU: "silu",
    nn.ELU: "elu", nn.SELU: "selu", nn.CELU: "celu", nn.LeakyReLU: "leaky_relu", nn.Mish: "mish",
    nn.Softplus: "softplus", nn.ReLU6: "relu6", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hard_sigmoid",
    nn.Hardtanh: "hardtanh", nn.Softsign: "softsign", nn.Tanhshrink: "tanhshrink", nn.LogSigmoid: "log_sigmoid",
    nn.Hardshrink: "hardshrink", nn.Softshrink: "softshrink", nn.RReLU: "rrelu", nn.PReLU: "prelu",
    nn.Identity: "identity",
}

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d,
              nn.InstanceNorm2d, nn.RMSNorm)


@dataclass(frozen=True)
class Watched:
    """A watched module: its name in model.named_modules(), the module, its kind
    ('weight', 'norm' or 'activation'), and for activations the catalog entry."""

    name: str
    module: nn.Module
    kind: str
    activation: Activation | None = None


def catalog_activation(module: nn.Module) -> Activation | None:
    """The catalog Activation a module computes, when gradvet knows it: by class for PyTorch's
    activations (parameters read off the module), by its values for any other parameter-free
    class outside torch.nn (`activations.identify`)."""
    if isinstance(module, ActivationModule):
        return module.activation
    name = _TORCH_ACTIVATIONS.get(type(module))
    if name is None:
        return None if type(module).__module__.startswith("torch.") else identify_module(module)
    params = {}
    if isinstance(module, nn.LeakyReLU):
        params["negative_slope"] = module.negative_slope
    elif isinstance(module, (nn.ELU, nn.CELU)):
        params["alpha"] = module.alpha
    elif isinstance(module, nn.Softplus):
        params["beta"] = module.beta
    elif isinstance(module, nn.Hardtanh) and not isinstance(module, nn.ReLU6):
        params.update(min_val=module.min_val, max_val=module.max_val)
    elif isinstance(module, (nn.Hardshrink, nn.Softshrink)):
        params["lambd"] = module.lambd
    elif isinstance(module, nn.RReLU):
        params.update(lower=module.lower, upper=module.upper)
    elif isinstance(module, nn.PReLU):
        if module.weight.numel() != 1:
            return None
        params["slope"] = float(module.weight.detach().clamp(0, 1))
    elif isinstance(module, nn.GELU) and module.approximate == "tanh":
        name = "gelu_tanh"
    try:
        return activation(name, **params)
    except ValueError:
        return None


def _passes_through(module: nn.Module, act: Activation) -> bool:
    """nn.Identity, or a module of another class found to compute the identity (Hugging Face's
    LinearActivation): nothing to watch. gradvet's own ActivationModule of 'identity' (a linear net
    chosen on purpose) is watched."""
    return isinstance(module, nn.Identity) or (act.name == "identity" and not isinstance(module, ActivationModule))


def watched_modules(model: nn.Module) -> list[Watched]:
    """Every module a probe watches, in model.named_modules() order."""
    out: list[Watched] = []
    for name, module in model.named_modules():
        act = catalog_activation(module)
        if act is not None and not _passes_through(module, act):
            out.append(Watched(name, module, "activation", act))
        elif any(True for _ in module.parameters(recurse=False)):
            kind = "norm" if isinstance(module, NORM_TYPES) else "weight"
            out.append(Watched(name, module, kind))
        elif isinstance(module, nn.Identity):
            continue
    return out
