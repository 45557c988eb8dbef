"""`gradvet watch STORE`: the runs of a store drawn in the terminal (rich), live while a sweep writes it.

One frame (`frame(snapshot)`): a header (runs per status, alerts so far), a table of the runs
(those in flight first: status, progress bar with step / steps, latest loss, the per-layer gradient
profile, alerts), and the alerts written last, with their messages. The per-layer profile is a
sparkline of log10 ||g|| over the layers in model order (input side left): each character's height
is the layer's norm between the run's smallest and largest (printed beside it, low..high), '!' a non-finite
norm, '·' a zero; more than PROFILE_WIDTH layers are drawn by the largest of each group. `watch`
redraws every `interval` seconds from a fresh read-only snapshot (`gradvet.sweep.snapshot`).
"""

from __future__ import annotations

import math
import os
import sys
import time

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gradvet.base.formatting import number, short_number
from gradvet.sweep.snapshot import RunView, Snapshot, snapshot

BLOCKS = "▁▂▃▄▅▆▇█"
PROFILE_WIDTH = 24
BAR_WIDTH = 12
LABEL_WIDTH = 32  # a run's label is cut here (`gradvet runs` shows it whole)
WIDTH_OFF_TERMINAL = 160  # columns of a frame printed to a file or a pipe
STATUS_STYLE = {"running": "cyan", "done": "green", "diverged": "bold red", "failed": "magenta"}
KIND_STYLE = {"exploding": "bold red", "nonfinite": "bold red", "spike": "red", "unstable": "red",
              "loss_rising": "yellow", "vanishing": "yellow", "stall": "yellow"}


def profile(layers: dict[str, float], width: int = PROFILE_WIDTH) -> Text:
    """A sparkline of log10 of the per-layer norms (see the module's docstring), then '[low, high]'."""
    values = list(layers.values())
    if not values:
        return Text("-")
    if len(values) > width:  # the largest of each of `width` consecutive groups
        edges = [round(i * len(values) / width) for i in range(width + 1)]
        values = [_largest(values[a:b]) for a, b in zip(edges, edges[1:])]
    logs = [math.log10(v) for v in values if math.isfinite(v) and v > 0]
    low, high = (min(logs), max(logs)) if logs else (0.0, 0.0)
    text = Text()
    for v in values:
        if not math.isfinite(v):
            text.append("!", style="bold red")
        elif v <= 0:
            text.append("·", style="dim")
        else:
            level = 0 if high == low else round((math.log10(v) - low) / (high - low) * (len(BLOCKS) - 1))
            text.append(BLOCKS[level])
    if logs:
        text.append(f" {_compact(10 ** low)}..{_compact(10 ** high)}", style="dim")
    return text


def _compact(value: float) -> str:
    """Two significant digits, the exponent without its '+' and leading zeros: 5.2e4, 0.64, 3e-5."""
    text = short_number(value)
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else text


def _largest(values: list[float]) -> float:
    bad = [v for v in values if not math.isfinite(v)]
    return bad[0] if bad else max(values)


def progress_bar(step: int | None, steps: int | None, width: int = BAR_WIDTH) -> Text:
    if step is None:
        return Text("-")
    if not steps:
        return Text(str(step))
    filled = min(width, round(width * step / steps))
    return Text("█" * filled, style="cyan") + Text("░" * (width - filled), style="dim") + Text(f" {step}/{steps}")


def _ago(seconds: float | None, now: float) -> str:
    if seconds is None:
        return "-"
    age = max(0.0, now - seconds)
    return f"{age:.0f} s ago" if age < 120 else f"{age / 60:.0f} min ago" if age < 7200 else f"{age / 3600:.0f} h ago"


def _alerts_cell(run: RunView) -> Text:
    if not run.monitored and not run.alerts:
        return Text("-")
    if not run.alerts:
        return Text("0", style="green")
    last = run.alerts[-1]
    return Text(f"{len(run.alerts)}: ") + Text(f"{last['kind']} at {last['step']}", style=KIND_STYLE.get(last["kind"], ""))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def shared_words(labels: list[str]) -> list[str]:
    """The words every label has (in the first label's order); none for fewer than two labels."""
    if len(labels) < 2:
        return []
    common = set.intersection(*(set(label.split()) for label in labels))
    return [word for word in labels[0].split() if word in common]


def frame(snap: Snapshot) -> Group:
    """One frame of the view. The runs' labels are shown without the words they all share (said once above)."""
    counts = ", ".join(f"{n} {status}" for status, n in snap.counts.items() if n)
    header = Text(f"gradvet watch {snap.path}: ", style="bold") + Text(
        f"{_count(sum(snap.counts.values()), 'run')} ({counts or 'none yet'}); {_count(snap.alert_count, 'alert')}; "
        f"{time.strftime('%H:%M:%S', time.localtime(snap.taken))}")
    shared = shared_words([run.label for run in snap.runs])
    if shared:
        header.append(f"\nevery run shown: {' '.join(shared)}", style="dim")

    def own(label: str) -> str:
        return " ".join(word for word in label.split() if word not in shared) or label
    table = Table(header_style="bold", pad_edge=False, expand=False, box=box.SIMPLE_HEAD)
    # name, justify, the width it keeps however narrow the terminal (None: it gives way first)
    for name, justify, keep in (("key", "left", 8), ("run", "left", None), ("status", "left", 8),
                                ("progress", "left", 22), ("loss", "right", 9), ("||g|| per layer (log)", "left", None),
                                ("alerts", "left", None), ("updated", "right", 10)):
        table.add_column(Text(name), justify=justify, no_wrap=True, overflow="ellipsis", min_width=keep,
                         max_width=LABEL_WIDTH if name == "run" else None)
    for run in snap.runs:
        table.add_row(Text(run.key[:8]), Text(own(run.label)), Text(run.status, style=STATUS_STYLE.get(run.status, "")),
                      progress_bar(run.step, run.steps), Text(number(run.loss, 4)), profile(run.layers),
                      _alerts_cell(run), Text(_ago(run.updated, snap.taken)))
    parts = [header, table]
    if snap.hidden:
        parts.append(Text(f"... and {snap.hidden} more runs (gradvet runs --store {snap.path} lists them all)",
                          style="dim"))
    if snap.alerts:
        alerts = Table(title=Text("latest alerts", style="bold"), title_justify="left", show_header=False,
                       pad_edge=False, box=None)
        for name in ("step", "run", "kind", "message"):
            alerts.add_column(name, no_wrap=name != "message", overflow="fold" if name == "message" else "ellipsis",
                              max_width=LABEL_WIDTH if name == "run" else None)
        for label, a in snap.alerts:
            where = f" in {a['layer']}" if a.get("layer") else ""
            alerts.add_row(Text(f"step {a['step']}"), Text(own(label)), Text(f"{a['kind']}{where}",
                                                                         style=KIND_STYLE.get(a["kind"], "")),
                           Text(f"{a['message']} {a['remedy']}"))
        parts.append(alerts)
    return Group(*parts)


def watch(path: str | os.PathLike[str], interval: float, once: bool, console: Console | None = None) -> None:
    """Draw the store at `path` once (`once`), or every `interval` seconds until Ctrl-C (KeyboardInterrupt
    is left to the caller): in place on a terminal (rich Live), frame after frame into a file or a pipe.
    A store that is not one (or vanishes) is GradvetError, one sentence."""
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else WIDTH_OFF_TERMINAL)
    first = snapshot(path)
    if once or not console.is_terminal:
        console.print(frame(first))
        while not once:
            time.sleep(interval)
            console.print(frame(snapshot(path)))
        return
    with Live(frame(first), console=console, refresh_per_second=max(1.0, 1.0 / interval),
              auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            live.update(frame(snapshot(path)), refresh=True)
