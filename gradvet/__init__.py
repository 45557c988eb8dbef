"""gradvet: see, explain and fix vanishing and exploding gradients in PyTorch networks."""

import sys

from gradvet import activations
from gradvet.activations import Activation, activation, register
from gradvet.base.version import VERSION as __version__
from gradvet.choose import Choice, choose
from gradvet.base.errors import GradvetError
from gradvet.probe import Diagnosis, Probe, Trace, diagnose

__all__ = ["Activation", "Choice", "Diagnosis", "GradvetError", "Probe", "Trace", "activation", "activations",
           "choose", "diagnose", "register", "__version__"]


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
