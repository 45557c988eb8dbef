"""Optional packages (the extras of pyproject.toml), imported only by the feature that needs them.

`require("wandb", "wandb", "log_to='wandb'")` imports and returns the package, or raises one
sentence naming what to install: `pip install 'gradvet[wandb]'`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from gradvet.base.errors import GradvetError


def require(module: str, extra: str, feature: str) -> ModuleType:
    """The package `module`, imported; if it is missing, a GradvetError saying that `feature` needs the
    extra `extra` and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise GradvetError(f"{feature} needs the {module.split('.')[0]} package, which is not installed "
                           f"({err}); install it with: pip install 'gradvet[{extra}]'.") from None
