"""Figures of `gradvet experiment speed-of-learning` (`gradvet.experiments.speed_of_learning`):
Nielsen's speed of learning ||dC/db|| per hidden layer, at initialisation and during training."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from gradvet.report.experiment_figures._axes import finish


def init(data: dict[str, Any]) -> Figure:
    """Speed per hidden layer at initialisation, one line per network; the book's numbers dashed beside
    them when given. data: layers (the most hidden layers), networks [{label, speed, book or None}]."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for net in data["networks"]:
        layers = range(1, len(net["speed"]) + 1)
        line, = ax.semilogy(layers, net["speed"], "o-", label=net["label"])
        if net["book"] is not None:
            ax.semilogy(layers, net["book"], "x--", color=line.get_color(), label=f"{net['label']} (Nielsen)")
    ax.set_xticks(range(1, data["layers"] + 1))
    finish(ax, "hidden layer", "speed of learning ||dC/db|| at initialisation",
           "Each hidden layer learns slower than the next")
    return fig


def training(data: dict[str, Any]) -> Figure:
    """Speed per hidden layer during full-batch training, one panel per network; the range over seeds
    shaded when band. data: eta, lambda, epochs, band, networks [{label, layers, epoch, mean, min, max}]
    (mean, min and max: one list per hidden layer)."""
    networks = data["networks"]
    fig = Figure(figsize=(4.2 * len(networks), 3.8))
    axes = fig.subplots(1, len(networks), sharey=True, squeeze=False)[0]
    for ax, net in zip(axes, networks):
        for i in range(net["layers"]):
            line, = ax.semilogy(net["epoch"], net["mean"][i], label=f"hidden layer {i + 1}")
            if data["band"]:
                ax.fill_between(net["epoch"], net["min"][i], net["max"][i], color=line.get_color(), alpha=0.2)
        ax.set_title(net["label"])
        ax.set_xlabel("epoch")
        ax.set_xlim(0, data["epochs"])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("speed of learning ||dC/db||")
    fig.suptitle(f"Speed of learning during full-batch training (eta {data['eta']:g}, lambda {data['lambda']:g})")
    return fig


DRAWINGS = {"speed-of-learning.init": init, "speed-of-learning.training": training}
