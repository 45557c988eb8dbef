"""Figures of mean-field theory: the order-chaos phase diagram."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from gradvet.report.activation_plots import _save


def plot_phase_diagram(act, data: dict, path: str | Path) -> Path:
    """Critical sw2 against sb2: below the line gradients vanish (ordered), above they explode (chaotic)."""
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    pts = [(b, s) for b, s in zip(data["sb2"], data["critical_sw2"]) if s is not None]
    if pts:
        ax.plot([p[1] for p in pts], [p[0] for p in pts], color="#b00020", lw=2, label="edge of chaos (chi1 = 1)")
    ax.set_xlabel("sw2 (weight variance x fan-in)")
    ax.set_ylabel("sb2 (bias variance)")
    ax.set_title(f"{act.label()}: ordered (vanishing) left, chaotic (exploding) right", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
