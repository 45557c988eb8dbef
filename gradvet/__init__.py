"""gradvet: see, explain and fix vanishing and exploding gradients in PyTorch networks.

The public names load on first use (PEP 562 module `__getattr__`), so `import gradvet`
costs almost nothing and `gradvet.Probe`, `gradvet.Monitor` or `gradvet.activation("relu")` load only what
they need: torch, never matplotlib, SciPy, scikit-learn, pandas or SymPy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from gradvet.base.errors import GradvetError
from gradvet.base.version import VERSION as __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time `__getattr__` imports them
    from gradvet import activations
    from gradvet.activations import Activation, activation, register
    from gradvet.choose import Choice, choose
    from gradvet.integrations import Watch, save_run, watch
    from gradvet.monitor import Alert, Monitor
    from gradvet.probe import Diagnosis, Probe, Trace, diagnose

# public name -> the module that defines it
_LAZY = {
    "Activation": "gradvet.activations",
    "activation": "gradvet.activations",
    "register": "gradvet.activations",
    "Alert": "gradvet.monitor",
    "Choice": "gradvet.choose",
    "choose": "gradvet.choose",
    "Diagnosis": "gradvet.probe",
    "Probe": "gradvet.probe",
    "Trace": "gradvet.probe",
    "diagnose": "gradvet.probe",
    "Monitor": "gradvet.monitor",
    "Watch": "gradvet.integrations",
    "save_run": "gradvet.integrations",
    "watch": "gradvet.integrations",
}
_SUBMODULES = ("activations",)

__all__ = ["Activation", "Alert", "Choice", "Diagnosis", "GradvetError", "Monitor", "Probe", "Trace", "Watch",
           "activation", "activations", "choose", "diagnose", "register", "save_run", "watch", "__version__"]


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use and keep the name here."""
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package, where `gradvet.choose` stays the function `choose`.

    The function shares its name with the submodule `gradvet.choose`, and the import
    system binds a submodule on its package when it first loads it: without this, an
    `import gradvet.choose` anywhere (the CLI does) would turn `gradvet.choose` into the
    module. The module itself stays in `sys.modules["gradvet.choose"]`.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


# Notebooks show a Diagnosis or a Choice as HTML. The objects are plain data and never import the
# report layer; instead, when gradvet is imported inside a running IPython shell (Jupyter, IPython),
# it registers these two functions with the shell's text/html formatter, by class name. That is the
# only effect of importing gradvet, and only there; gradvet.report loads when such an object is shown.
def _diagnosis_html(diagnosis: Diagnosis) -> str:
    from gradvet.report.diagnosis_view import render_html

    return render_html(diagnosis)


def _choice_html(choice: Choice) -> str:
    from gradvet.report.choice_view import render_html

    return render_html(choice)


_NOTEBOOK_HTML = {("gradvet.probe.diagnosis", "Diagnosis"): _diagnosis_html, ("gradvet.choose", "Choice"): _choice_html}


def _register_notebook_views() -> None:
    """Register _NOTEBOOK_HTML with the running IPython shell, if there is one (IPython is never imported here)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    for (module, name), to_html in _NOTEBOOK_HTML.items():
        formatter.for_type_by_name(module, name, to_html)


_register_notebook_views()
