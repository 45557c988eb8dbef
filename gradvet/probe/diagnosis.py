"""`diagnose(probe_or_trace) -> Diagnosis`: vanishing, exploding or healthy, why, and what to do.

The verdict reads the backward signal, not the weight gradients: for the
hidden weight layers 1..L (the read-out excluded) it takes delta_l =
||dL/d z_l||, the norm of the gradient at layer l's output (for a linear
layer the bias gradient is its batch sum), and the ratio delta_1 / delta_L.

    ratio < vanishing (default 1e-2)  -> "vanishing"
    ratio > exploding (default 1e2)   -> "exploding"; any NaN/Inf gradient too
    otherwise                         -> "healthy"

Weight-gradient norms alone mislead: dL/dW_l = delta_l a_{l-1}^T, so a
forward signal that shrinks as fast as the backward one keeps them level
across layers (Glorot & Bengio 2010, eq. 14) while delta_1 is tiny. The cause
splits the ratio into the chain-rule factors measured by the probe: per hidden
layer an activation factor (gain through f') and a weight factor (gain through
W^T of the layer above); their products telescope to delta_1 / delta_L.

A model whose repeated blocks have identity skips (a residual stream: ResNets, transformers)
is judged on the stream instead, ||dL/dh|| at the first block's output over the last's, with
the same thresholds, and its cause and remedies speak in blocks (`probe.diagnosis_blocks`,
`probe.remedies_blocks`); the per-layer reports stay beside it.

A NaN or Inf is placed where it first appears in the forward pass, with the layer
the backward pass met first beside it (`probe.nonfinite`). Units with f'(z) = 0 for a
whole batch are called inactive; only those inactive over many recorded training
steps are called dead (`probe.dead_units`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.base.formatting import short_number
from gradvet.base.jsonable import jsonable
from gradvet.base.stats import geometric_mean, product
from gradvet.probe import diagnosis_blocks as stream
from gradvet.probe.dead_units import DEAD_RECORDS, DEAD_SPAN
from gradvet.probe.diagnosis_blocks import BlockReport, Stream
from gradvet.probe.diagnosis_text import plain_text
from gradvet.probe.metrics import registry
from gradvet.probe.metrics.calls import Calls
from gradvet.probe.metrics.output_grad_norm import OutputGradNorm
from gradvet.probe.metrics.unit import ABOVE, ACTIVATION, LAYER, OWN, Metric
from gradvet.probe.nonfinite import NonFinite, from_trace
from gradvet.probe.probe import Probe
from gradvet.probe.remedies import Remedy, suggest
from gradvet.probe.remedies_blocks import suggest_for_blocks
from gradvet.probe.thresholds import DEAD, EXPLODING, MEAN_DEAD, SATURATED, VANISHING
from gradvet.probe.trace import INPUT, Trace

__all__ = ["EXPLODING", "VANISHING", "Diagnosis", "LayerReport", "Remedy", "diagnose", "geometric_mean",
           "short_number"]


@dataclass
class LayerReport:
    """One hidden weight layer and the activation after it: delta = ||dL/dz_l||, its ratio to the
    last hidden layer's, mean-field theory's predicted ratio (`Diagnosis.attach_prediction`), and
    in `values` the diagnosis columns of the probe's metrics (`probe.metrics.Column`), read as
    attributes too: activation_gain, weight_gain, forward_std, dead_fraction (inactive on the
    diagnosed step's batch), persistent_dead_fraction (dead: inactive on every recorded step of
    at least DEAD_SPAN steps), saturated_fraction, weight_grad_norm, bias_grad_norm, and the
    columns of any metric one registers."""

    name: str
    activation: str | None
    delta: float
    ratio_to_last: float
    values: dict[str, float | None] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    predicted_ratio: float | None = None

    def __getattr__(self, key: str) -> float | None:
        values = self.__dict__.get("values")
        if values is None or key not in values:
            raise AttributeError(f"LayerReport has no attribute or column {key!r}")
        return values[key]

    def get(self, key: str) -> float | None:
        """A column's value (or delta, ratio_to_last, predicted_ratio); None where there is none."""
        if key in ("delta", "ratio_to_last", "predicted_ratio"):
            return getattr(self, key)
        return self.values.get(key)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the columns beside the layer's name (as the diagnosis' JSON has them)."""
        return {"name": self.name, "activation": self.activation, "delta": self.delta,
                "ratio_to_last": self.ratio_to_last, **self.values, "flags": list(self.flags),
                "predicted_ratio": self.predicted_ratio}


@dataclass
class Diagnosis:
    verdict: str
    step: int
    ratio: float
    thresholds: dict[str, float]
    layers: list[LayerReport]
    cause: str
    remedies: list[Remedy]
    notes: list[str]
    activation_factor: float | None = None
    weight_factor: float | None = None
    forward_ratio: float | None = None
    nonfinite: NonFinite | None = None
    output_layer: str | None = None
    predicted_ratio: float | None = None
    prediction_note: str | None = None
    histograms: dict[str, dict[str, list]] = field(default_factory=dict)  # `probe.histograms`, when taken
    basis: str = "layers"  # what the verdict reads: 'layers' (delta_1/delta_L) or 'blocks' (the residual stream)
    blocks: list[BlockReport] = field(default_factory=list)  # per block, in a residual net
    stream: Stream | None = None  # the residual stream in a few numbers, in a residual net

    @property
    def ratio_name(self) -> str:
        """What `ratio` is: 'delta_1/delta_L' or, in a residual net, '||dL/dh|| first/last block'."""
        return stream.RATIO_NAME if self.basis == "blocks" else "delta_1/delta_L"

    def attach_prediction(self, prediction) -> Diagnosis:
        """Set mean-field theory's predicted ratios (a `probe.predicted.Prediction`) beside the
        measured ones, or record why there is none (a sentence)."""
        if isinstance(prediction, str):
            self.prediction_note = f"no mean-field prediction: {prediction}."
            return self
        for lay in self.layers:
            lay.predicted_ratio = prediction.ratios.get(lay.name)
        self.predicted_ratio = prediction.first_to_last
        mean_sw2 = sum(prediction.sw2) / len(prediction.sw2)
        self.prediction_note = (
            f"mean-field prediction for {prediction.activation} with the model's own weights "
            f"(n_in*mean(W^2) = {mean_sw2:.3g} on average, input q0 = {prediction.q0:.3g}): delta_1/delta_L "
            f"{short_number(prediction.first_to_last)} predicted, {short_number(self.ratio)} measured"
            + (" (theory assumes random weights: after training it is a reference, not a forecast)."
               if self.step > 0 else ".")
        )
        return self

    def layer_mean(self, field_name: str) -> float | None:
        """Mean of a LayerReport column over the hidden layers that have it (None when none has)."""
        values = [lay.get(field_name) for lay in self.layers if lay.get(field_name) is not None]
        return statistics.fmean(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["layers"] = [lay.to_dict() for lay in self.layers]
        return jsonable({"kind": "diagnosis", **record})

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        """Plain text (`probe.diagnosis_text`); the rich, HTML and notebook views are in `gradvet.report`."""
        return plain_text(self)


def _pick_step(trace: Trace, step: int | str) -> int:
    steps = trace.steps()
    if not steps:
        raise GradvetError("nothing to diagnose: the probe recorded no step (run a forward and backward pass inside it).")
    if step == "last":
        return steps[-1]
    if step == "first":
        return steps[0]
    if step not in steps:
        raise GradvetError(f"step {step!r} was not recorded; recorded steps: {steps[0]}..{steps[-1]}.")
    return int(step)


def diagnose(source, step: int | str = "last", vanishing: float = VANISHING, exploding: float = EXPLODING,
             activation_names: dict[str, str] | None = None) -> Diagnosis:
    """Diagnose the gradient flow recorded by a Probe (or a Trace) at one step
    ('last' by default, 'first', or a step number)."""
    probe = source if isinstance(source, Probe) else None
    trace = source.trace if probe is not None else source
    if not isinstance(trace, Trace):
        raise GradvetError(f"diagnose needs a Probe or a Trace; got {type(source).__name__}.")
    if not (0 < vanishing < 1 < exploding):
        raise GradvetError(f"thresholds vanishing={vanishing:g}, exploding={exploding:g}: need 0 < vanishing < 1 < exploding.")
    at = _pick_step(trace, step)
    table = trace.at(at)
    kinds = trace.kinds
    order = [name for name in table if name != INPUT]
    weights = [n for n in order if kinds.get(n) == "weight"]
    acts_of = _activation_after(order, kinds)
    names = dict(activation_names or {})
    if probe is not None:
        names.update({w.name: w.activation.name for w in probe._watched if w.activation is not None})
    nonfinite = _nonfinite(trace, probe)
    hidden, out_layer = weights[:-1], (weights[-1] if weights else None)
    notes: list[str] = []
    if not hidden:
        notes.append("the model has a single weight layer: no depth for gradients to vanish through.")
    deltas = [table[n].get(OutputGradNorm.name, math.nan) for n in hidden]
    last = deltas[-1] if deltas else math.nan
    units = [type(m) for m in probe.metrics] if probe is not None else registry.metrics()
    layers: list[LayerReport] = []
    for i, name in enumerate(hidden):
        act = acts_of.get(name)
        upper = hidden[i + 1] if i + 1 < len(hidden) else out_layer
        rows = {OWN: table[name], ACTIVATION: table.get(act, {}) if act else {},
                ABOVE: table.get(upper, {}) if upper else {}}
        report = LayerReport(
            name=name, activation=act, delta=deltas[i],
            ratio_to_last=deltas[i] / last if last and math.isfinite(last) and last > 0 else math.nan,
            values=_column_values(units, rows, table.get(INPUT, {})),
        )
        persistent, inactive, saturated = (report.get(k) for k in ("persistent_dead_fraction", "dead_fraction",
                                                                    "saturated_fraction"))
        if persistent is not None and persistent >= DEAD:
            report.flags.append("dead")
        elif inactive is not None and inactive >= DEAD:
            report.flags.append("inactive")
        if saturated is not None and saturated >= SATURATED:
            report.flags.append("saturated")
        layers.append(report)
    ratio = deltas[0] / last if len(deltas) >= 2 and last > 0 else (1.0 if len(deltas) < 2 else math.nan)
    if nonfinite is not None or (deltas and not all(math.isfinite(d) for d in deltas)):
        verdict = "exploding"
    elif ratio < vanishing:
        verdict = "vanishing"
    elif ratio > exploding:
        verdict = "exploding"
    else:
        verdict = "healthy"
    blocks = stream.block_names(table)
    residual = stream.is_residual(table, blocks)
    if residual:
        reports = stream.block_reports(table, blocks)
        ratio = stream.stream_ratio(reports)
        finite_stream = all(math.isfinite(r.stream_grad_norm) for r in reports)
        verdict = ("exploding" if nonfinite is not None or not finite_stream or ratio > exploding
                   else "vanishing" if ratio < vanishing else "healthy")
        stream.flag_blocks(reports, verdict, vanishing, exploding)
    for lay in layers if not residual else ():
        if verdict == "vanishing" and lay.ratio_to_last < vanishing:
            lay.flags.append("vanishing")
        if verdict == "exploding" and lay.ratio_to_last > exploding:
            lay.flags.append("exploding")
    act_factors = [lay.get("activation_gain") for lay in layers[:-1]] if len(layers) > 1 else []
    weight_factors = [lay.get("weight_gain") for lay in layers[:-1]] if len(layers) > 1 else []
    forward = [lay.get("forward_std") for lay in layers if lay.get("forward_std") is not None]
    forward_ratio = forward[-1] / forward[0] if len(forward) >= 2 and forward[0] > 0 else None
    diagnosis = Diagnosis(
        verdict=verdict, step=at, ratio=ratio, thresholds={"vanishing": vanishing, "exploding": exploding},
        layers=layers, cause="", remedies=[], notes=notes,
        activation_factor=product(act_factors), weight_factor=product(weight_factors),
        forward_ratio=forward_ratio, nonfinite=nonfinite, output_layer=out_layer,
    )
    main_act = _main_activation(layers, names)
    if residual:
        classes = {n: type(m).__name__ for n, m in probe.model.named_modules()} if probe is not None else {}
        diagnosis.basis, diagnosis.blocks = "blocks", reports
        post_norm = probe._blocks.post_norm if probe is not None else None
        diagnosis.stream = stream.stream_summary(table, reports, kinds, classes, post_norm)
        diagnosis.cause = (_nonfinite_cause(nonfinite) if nonfinite is not None
                           else stream.stream_cause(verdict, ratio, diagnosis.stream, reports))
        diagnosis.notes = stream.stream_notes(diagnosis.stream, len(weights)) + _notes(diagnosis, trace, probe)
        diagnosis.remedies = suggest_for_blocks(diagnosis, trace, main_act)
        return diagnosis
    diagnosis.cause = _cause(diagnosis, act_factors, weight_factors, main_act)
    diagnosis.notes += _notes(diagnosis, trace, probe)
    diagnosis.remedies = suggest(diagnosis, trace, main_act, recurrent=_recurrent(trace, probe))
    return diagnosis


def _column_values(units: Iterable[type[Metric]], rows: dict[str, dict[str, float]], input_row: dict[str, float]) -> dict[str, float | None]:
    """{column key: value} of one hidden layer: each metric's columns (`probe.metrics.Column`), read from
    the layer itself, the activation after it or the weight layer above it; relative_to_input divides by
    the model input's value of the same metric (forward std = activation std / input std)."""
    values: dict[str, float | None] = {}
    for unit in units:
        if unit.scope != LAYER:
            continue
        for column in unit.columns:
            value = rows[column.source].get(unit.name)
            reference = input_row.get(unit.name)
            if value is not None and column.relative_to_input and reference:
                value = value / reference
            values[column.key] = value
    return values


def _activation_after(order: list[str], kinds: dict[str, str]) -> dict[str, str]:
    """Weight layer -> the first activation after it in forward order (before the next weight layer)."""
    out: dict[str, str] = {}
    current = None
    for name in order:
        kind = kinds.get(name)
        if kind == "weight":
            current = name
        elif kind == "activation" and current is not None and current not in out:
            out[current] = name
    return out


def _nonfinite(trace: Trace, probe) -> NonFinite | None:
    if probe is not None:
        return probe.first_nonfinite
    return from_trace(trace)


def _recurrent(trace: Trace, probe) -> bool:
    if probe is not None:
        from torch import nn

        recurrent = (nn.RNNBase, nn.RNNCellBase)
        if any(isinstance(m, recurrent) for m in probe.model.modules()):
            return True
    return any(metric == Calls.name and value > 1 for _, layer, metric, value in trace.rows
               if trace.kinds.get(layer) == "weight")


def _main_activation(layers: list[LayerReport], names: dict[str, str]) -> str | None:
    found = [names.get(lay.activation) for lay in layers if lay.activation]
    found = [f for f in found if f]
    return statistics.mode(found) if found else None


def _nonfinite_cause(nf: NonFinite) -> str:
    """Where the first NaN/Inf appeared: forward pass first, the backward pass's first layer beside it."""
    met = f"the backward pass met it first at {nf.backward_layer!r}" if nf.backward_layer else \
        "no gradient had met it yet"
    if nf.forward_layer is not None:
        if nf.in_input:
            where = (f"already in its input: made after {nf.after!r} by code the probe does not watch" if nf.after
                     else "already in its input: present in the data, or made before it by code the probe does "
                          "not watch")
        else:
            where = "in its output, from a finite input: the module itself made it"
        return (f"a value became NaN or Inf at step {nf.step}: first non-finite in the forward pass at "
                f"{nf.forward_layer!r}, {where} ({met}).")
    if nf.backward_layer is None:
        return f"a recorded number became NaN or Inf at step {nf.step}."
    if nf.forward_checked:
        return (f"a gradient became NaN or Inf at step {nf.step} while every watched module's input and output were "
                f"finite: the backward signal overflowed ({met}).")
    return f"a gradient became NaN or Inf at step {nf.step} ({met})."


def _cause(d: Diagnosis, act_factors: list, weight_factors: list, main_act: str | None) -> str:
    if d.nonfinite is not None:
        return _nonfinite_cause(d.nonfinite)
    n = len(act_factors)
    if n == 0:
        return "too few hidden layers to split the gradient into chain-rule factors."
    act_mean, weight_mean = geometric_mean(act_factors), geometric_mean(weight_factors)
    bound = ""
    if main_act:
        from gradvet.activations import activation

        try:
            top = activation(main_act).max_grad
            bound = f", {main_act}' <= {top:.3g}" if math.isfinite(top) else ""
        except ValueError:
            bound = ""
    core = f"{_factor_text('activation derivative', d.activation_factor, act_mean, act_factors, bound)}; " \
           f"{_factor_text('weight', d.weight_factor, weight_mean, weight_factors, '')}"
    if math.isnan(d.ratio):
        return f"no gradient reached the last hidden layer (delta_L = 0), so delta_1/delta_L is not defined; {core}."
    if d.verdict == "healthy":
        return f"the backward signal keeps its size: delta_1/delta_L = {short_number(d.ratio)}; {core}."
    lead = "vanishes" if d.verdict == "vanishing" else "grows"
    return f"the backward signal {lead}: delta_1/delta_L = {short_number(d.ratio)}; {core}."


def _factor_text(kind: str, total: float | None, mean: float | None, factors: list, bound: str) -> str:
    """'the <kind> factors multiply to X across n layers (mean Y per layer)', or in words why not."""
    n = len(factors)
    measured = [f for f in factors if f is not None and math.isfinite(f)]
    if not measured:
        why = ("no activation module follows the hidden layers (a functional call such as torch.relu has no hooks "
               "to read)" if kind.startswith("activation") else "no gradient reached the layers' inputs")
        return f"the {kind} factors were not measured: {why}"
    some = f" ({len(measured)} of {n} measured)" if len(measured) < n else ""
    if mean is None:
        return f"the {kind} factors multiply to {short_number(total)} across {n} layers{some}: a layer passes no gradient back"
    return (f"the {kind} factors multiply to {short_number(total)} across {n} layers{some} "
            f"(mean {short_number(mean)} per layer{bound})")


def _inactive_note(d: Diagnosis) -> str | None:
    """Many units inactive on the diagnosed batch, but not (or not yet seen to be) dead: say what was
    measured, and why it is not a verdict (Lu et al. 2020; see `probe.dead_units`)."""
    inactive, dead = d.layer_mean("dead_fraction"), d.layer_mean("persistent_dead_fraction")
    if inactive is None or inactive < MEAN_DEAD or (dead is not None and dead >= MEAN_DEAD):
        return None  # few inactive units, or dead ones: the remedies speak of those
    if dead is None:
        tail = (f"they were not yet watched long enough to tell whether they stay so: units are called dead only when "
                f"inactive on every recorded step over at least {DEAD_SPAN} training steps ({DEAD_RECORDS} or more "
                "recorded steps).")
    else:
        tail = (f"only {dead:.0%} have been inactive on every recorded step over at least the last {DEAD_SPAN} "
                "training steps (dead).")
    return (f"on average {inactive:.0%} of the units are inactive on the batch of step {d.step} (f'(z) = 0 for every "
            "sample of it): they pass no gradient from this batch. Inactive is not dead: near initialisation it comes "
            "mostly from the correlation of deep representations (every input looks alike at depth), and such units "
            f"turn active again as the layers below them train; {tail}")


def _notes(d: Diagnosis, trace: Trace, probe) -> list[str]:
    notes = []
    wg = [lay.get("weight_grad_norm") for lay in d.layers if lay.get("weight_grad_norm")]
    layers = d.basis == "layers"  # in a residual net the stream's notes replace the layer chain's
    if layers and d.verdict == "vanishing" and len(wg) >= 2 and max(wg) / min(wg) < 1 / d.thresholds["vanishing"]:
        spread = max(wg) / min(wg)
        fwd = f"; the forward signal shrinks too (last/first activation std {short_number(d.forward_ratio)})" if d.forward_ratio else ""
        notes.append(f"weight-gradient norms are level across layers (max/min {spread:.2g}) although the backward "
                     f"signal vanishes (delta_1/delta_L = {short_number(d.ratio)}): dL/dW = delta a^T, and small deltas "
                     f"meet large activations{fwd}. Judge by the backward signal, not by weight gradients alone.")
    inactive = _inactive_note(d)
    if inactive:
        notes.append(inactive)
    if layers and d.forward_ratio is not None and (d.forward_ratio < 1e-2 or d.forward_ratio > 1e2):
        notes.append(f"the forward signal {'collapses' if d.forward_ratio < 1 else 'blows up'}: the last hidden "
                     f"layer's activation std is {short_number(d.forward_ratio)} of the first's.")
    shared = {}
    if probe is not None:
        shared = dict(probe.shared)
    else:
        for _, layer, metric, value in trace.rows:
            if metric == Calls.name:
                shared[layer] = max(shared.get(layer, 0), int(value))
    if shared:
        listed = ", ".join(f"{k} ({v} calls)" for k, v in list(shared.items())[:5])
        notes.append(f"modules called more than once per step (weight sharing or recurrence): {listed}; "
                     "their norms combine every call.")
    return notes
