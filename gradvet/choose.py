"""`choose(depth, width, ...) -> Choice`: which activation for *this* network, measured.

The article's advice (ReLU by default, no sigmoid in hidden layers, sigmoid for a binary
output, tanh rather than sigmoid) is checked on the user's own architecture: an MLP of
`depth` hidden layers of `width` units on `data`, with the given normalisation and skips.

For every candidate activation, with its matching initialisation:

1. theory: mean-field chi1 and the gradient depth scale xi_grad = -1/log chi1 at the init's
   weight variance sw2 (sb2 = 0; `gradvet.theory`), and the predicted delta_1/delta_L at this
   depth from the data's input second moment q0 = mean(x^2) (`theory.predict_profile`).
   Theory covers plain chains: with normalisation or skips it describes the net without them.
2. the probe at initialisation, per seed: the seeded model `train.run` would train, one
   forward/backward on a batch of PROBE_BATCH examples inside a `Probe`
   (`gradvet.checkup.probe_at_init`), then `diagnose`: the measured ratio delta_1/delta_L of the
   backward signal, and the mean over hidden layers of the dead fraction (units with f' = 0
   on every example) and the saturated fraction (|f'| below 5% of its maximum).
3. a short training per seed (`gradvet.train.run`, plain SGD by default, the same steps for
   every candidate): test accuracy (R^2 = max(0, 1 - MSE/Var(y)) for regression; a diverged
   seed scores 0), training loss at the start and the end (means of the first and last 10%
   of steps), and the measured seconds per step.

Matching initialisation (`match_init`): the catalog's own pairing where it has one
(`gradvet.activations.matching_init`, with the evidence):

- catalog ReLU family (relu, leaky_relu, elu, gelu, silu, mish, softplus, ...) -> he, sw2 = 2;
- selu -> lecun, sw2 = 1 (the condition for SELU's self-normalising fixed point);
- catalog tanh and sigmoid families (tanh, softsign, sigmoid, ...) -> xavier, sw2 = 1 for
  square layers;
- anything else (a formula such as "x*tanh(softplus(x))", the shrink and other families)
  -> critical (W ~ N(0, sw2*/n_in) at the edge of chaos, `theory.critical_sw2`) where the
  activation has an edge of chaos at sb2 = 0, else lsuv (its sw2 for theory is then read off
  the initialised model: the mean over hidden layers of n_in * mean(W^2)).

Score (higher is better), with ratio the measured delta_1/delta_L at initialisation (geometric
mean over seeds) and the fractions seed means:

    score = W_ACCURACY * accuracy                                      W_ACCURACY  = 1
          - W_GRADIENT * min(|log10 ratio|, GRADIENT_CAP)              W_GRADIENT  = 0.02 per decade, cap 10
          - W_DEAD * dead fraction                                     W_DEAD      = 0.1
          - W_SATURATED * max(0, saturated fraction - 0.5) / 0.5       W_SATURATED = 0.1
          - W_COST * max(0, log2(step time / fastest) - COST_SLACK)    W_COST      = 0.02 per doubling

Half the units off is ReLU's design (f' = 0 for z < 0 counts as saturated), so only saturation
beyond one half costs. COST_SLACK = 0.5 doublings (a factor 1.41) absorbs timing noise on a
shared machine. Accuracy dominates: one accuracy point weighs as much as half a decade of
gradient ratio, and the penalties other than cost add up to at most 0.4. Each row gets a
one-line reason citing its numbers, largest effect first.

The article's rules, each "confirmed", "not here" (measured, and it does not hold) or "not
measured" (a candidate it needs was not run): (1) the best ReLU-family accuracy beats
sigmoid's; (2) tanh's accuracy beats sigmoid's; (3) sigmoid's measured ratio is below 1e-2;
(4) relu's accuracy is within RELU_TOLERANCE (2 points) of the best.

Budget (seconds of wall time, everything included): candidates are measured in keep order
(relu, sigmoid, tanh first, for the rules; then the rest in the order given; the default list
is ordered by prior), one seed each first, then seed after seed. The first candidate's first
seed is always measured; its cost estimates every other (candidate, seed) unit (then the
running mean of the units measured). No unit starts unless its estimate fits in what is left,
so candidates are cut from the end of the keep order; a further seed is run only when the whole
pass over the measured candidates fits (so seeds are cut before candidates, and every candidate
has the same seeds unless an estimate proves short mid-pass). If a single training run of the
first candidate would not fit (timed over CALIBRATION_STEPS steps), the steps are cut for all.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from gradvet.activations import Activation
from gradvet.activations import activation as get_activation
from gradvet.activations.matching_init import matching_init
from gradvet.base import validation
from gradvet.base.errors import GradvetError, unknown
from gradvet.base.formatting import short_number
from gradvet.base.jsonable import jsonable
from gradvet.base.stats import finite_mean, geometric_mean
from gradvet.models.mlp import NORMS
from gradvet.probe.diagnosis import EXPLODING, VANISHING

DEFAULT_CANDIDATES = ("relu", "sigmoid", "tanh", "gelu", "leaky_relu", "silu", "elu", "selu", "mish", "softsign")
PROTECTED = ("relu", "sigmoid", "tanh")  # kept longest: the article's rules need them
TASKS = ("binary", "multiclass", "regression")

W_ACCURACY = 1.0
W_GRADIENT = 0.02
GRADIENT_CAP = 10.0  # decades
W_DEAD = 0.1
W_SATURATED = 0.1
SATURATED_BY_DESIGN = 0.5
W_COST = 0.02
COST_SLACK = 0.5  # doublings of step time within timing noise
WEIGHTS = {"accuracy": W_ACCURACY, "gradient_per_decade": W_GRADIENT, "gradient_cap_decades": GRADIENT_CAP,
           "dead": W_DEAD, "saturated_excess": W_SATURATED, "cost_per_doubling": W_COST,
           "cost_slack_doublings": COST_SLACK}

RELU_TOLERANCE = 0.02
ROUNDING = 1e-6  # float32 accuracies: a gap of exactly 0.02 (9 of 450 test examples) is within it
FLAT = 0.9  # loss at the end above 90% of the start: "flat"; above the start / 0.9: "rose"
PROBE_BATCH = 128
CALIBRATION_STEPS = 3
MIN_STEPS = 10
CONFIRMED, NOT_HERE, NOT_MEASURED = "confirmed", "not here", "not measured"

SW2 = {"he": 2.0, "xavier": 1.0, "lecun": 1.0}
INIT_TEXT = {
    "he": "He: W ~ N(0, 2/n_in), b = 0",
    "xavier": "Xavier: W ~ U(-a, a), a = sqrt(6/(n_in + n_out)), b = 0",
    "lecun": "LeCun: W ~ N(0, 1/n_in), b = 0",
    "critical": "critical: W ~ N(0, sw2*/n_in) at the edge of chaos, b = 0",
    "lsuv": "LSUV: orthogonal, then each layer rescaled to unit pre-activation variance",
}
OUTPUT_ADVICE = {
    "binary": ("sigmoid", "one sigmoid output unit with binary cross-entropy (torch: a single logit into "
                          "BCEWithLogitsLoss): the one place the article keeps sigmoid"),
    "multiclass": ("softmax", "softmax over the class logits with cross-entropy (torch: raw logits into "
                              "CrossEntropyLoss, which applies log-softmax)"),
    "regression": ("identity", "an identity (linear) output with mean squared error: no squashing of the target"),
}

_clock = time.perf_counter  # the budget's clock (tests replace it)


@dataclass
class Theory:
    """Mean-field numbers at the init's sw2 (sb2 = 0) and this depth."""

    sw2: float | None
    chi1: float | None
    xi_grad: float | None
    predicted_ratio: float | None
    phase: str
    verdict: str
    text: str
    applies: bool


@dataclass
class SeedResult:
    seed: int
    ratio: float
    dead_fraction: float
    saturated_fraction: float
    quality: float
    accuracy: float | None
    test_loss: float
    loss_start: float
    loss_end: float
    step_time: float
    status: str
    seconds: float


@dataclass
class CandidateResult:
    """One measured candidate: its numbers (seed means; the ratio a geometric mean), score and reason."""

    name: str
    family: str
    init: str
    theory: Theory | None = None
    seeds: list[SeedResult] = field(default_factory=list)
    ratio: float = math.nan
    dead_fraction: float = math.nan
    saturated_fraction: float = math.nan
    quality: float = math.nan
    quality_sd: float | None = None  # sample standard deviation over seeds (None with one seed)
    accuracy: float | None = None
    test_loss: float = math.nan
    loss_start: float = math.nan
    loss_end: float = math.nan
    step_time: float = math.nan
    diverged: int = 0
    seconds: float = 0.0
    penalties: dict[str, float] = field(default_factory=dict)
    score: float = math.nan
    rank: int = 0
    reason: str = ""

    def summarise(self) -> None:
        """Seed means of every number (the ratio: geometric mean of the finite positive ones)."""
        s = self.seeds
        self.ratio = geometric_mean((r.ratio for r in s), default=math.nan)
        self.dead_fraction = finite_mean([r.dead_fraction for r in s])
        self.saturated_fraction = finite_mean([r.saturated_fraction for r in s])
        self.quality = finite_mean([r.quality for r in s])
        self.quality_sd = statistics.stdev([r.quality for r in s]) if len(s) > 1 else None
        accs = [r.accuracy for r in s if r.accuracy is not None]
        self.accuracy = finite_mean(accs) if accs else None
        self.test_loss = finite_mean([r.test_loss for r in s])
        self.loss_start = finite_mean([r.loss_start for r in s])
        self.loss_end = finite_mean([r.loss_end for r in s])
        self.step_time = finite_mean([r.step_time for r in s])
        self.diverged = sum(r.status == "diverged" for r in s)
        self.seconds = sum(r.seconds for r in s)


@dataclass
class Rule:
    number: int
    text: str
    mark: str
    evidence: str


@dataclass
class Choice:
    """The ranking of activations for one architecture, the advice, and the article's rules checked.
    Plain data: its views (a rich table, notebook HTML) are `gradvet.report.choice_view`."""

    depth: int
    width: int
    data: str
    task: str
    norm: str | None
    residual: bool
    steps: int
    steps_asked: int
    seeds_asked: int
    optimizer: str
    lr: float
    batch_size: int
    budget: float
    elapsed: float
    candidates: list[str]
    rows: list[CandidateResult]
    cut: list[str]
    budget_note: str
    output_activation: str
    output_advice: str
    init_advice: str
    norm_advice: str
    rules: list[Rule]
    close_to_winner: list[str] = field(default_factory=list)  # accuracy within the seed spread of the winner's
    startup: float = 0.0  # seconds of elapsed before the first unit: loading data and libraries
    work: float = 0.0  # seconds of the measured (candidate, seed) units, all together
    quality_name: str = "accuracy"
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))

    @property
    def winner(self) -> str | None:
        return self.rows[0].name if self.rows else None

    @property
    def ranking(self) -> list[str]:
        return [r.name for r in self.rows]

    def row(self, name: str) -> CandidateResult:
        for r in self.rows:
            if r.name == name:
                return r
        raise unknown("candidate", name, f"the measured ones, {', '.join(self.ranking)}", choices=self.ranking)

    def rule(self, number: int) -> Rule:
        return next(r for r in self.rules if r.number == number)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"kind": "choice", **asdict(self), "winner": self.winner, "ranking": self.ranking})

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


# ---------------------------------------------------------------- small helpers

def _decades(ratio: float) -> float:
    """|log10 ratio|, capped at GRADIENT_CAP (also for a ratio that is zero, NaN or infinite)."""
    if not (math.isfinite(ratio) and ratio > 0):
        return GRADIENT_CAP
    return min(abs(math.log10(ratio)), GRADIENT_CAP)


def split_candidates(text: str) -> list[str]:
    """'relu,tanh, max(x, 0.1*x)' -> ['relu', 'tanh', 'max(x, 0.1*x)']: commas inside parentheses
    belong to a formula."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def match_init(act: Activation) -> str:
    """The initialisation paired with an activation: the catalog's matching init, else critical
    where the activation has an edge of chaos at sb2 = 0, else lsuv (see the module docstring)."""
    matched = matching_init(act)
    if matched is not None:
        return matched
    from gradvet.theory import critical_sw2

    try:
        return "critical" if critical_sw2(act) is not None else "lsuv"
    except (GradvetError, ArithmeticError, ValueError, RuntimeError):
        return "lsuv"


def keep_order(names: list[str]) -> list[str]:
    """relu, sigmoid, tanh first (those present), then the rest in the order given."""
    return [p for p in PROTECTED if p in names] + [n for n in names if n not in PROTECTED]


# ---------------------------------------------------------------- measurements

def _model_sw2(model: torch.nn.Module) -> float | None:
    """Mean over the hidden Linear layers of n_in * mean(W^2) (the read-out excluded)."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][:-1]
    if not linears:
        return None
    return statistics.fmean(float(m.weight.detach().double().pow(2).mean()) * m.in_features for m in linears)


def theory_verdict(act: Activation, init: str, depth: int, q0: float, sw2: float | None,
                   applies: bool = True) -> Theory:
    """chi1, xi_grad and the predicted delta_1/delta_L at this depth for the init's sw2."""
    from gradvet import theory as T

    if init == "critical":
        sw2 = T.critical_sw2(act)
    elif init in SW2:
        sw2 = SW2[init]
    if sw2 is None or not (math.isfinite(sw2) and sw2 > 0):
        return Theory(None, None, None, None, "unknown", "unknown", "no weight variance to predict from", applies)
    try:
        scales = T.depth_scales(act, sw2, 0.0, q0=q0)
        c1 = scales.chi1
        predicted = T.predict_profile(act, depth, sw2, 0.0, q0=q0)[0]
    except (GradvetError, ArithmeticError, ValueError, RuntimeError) as err:
        return Theory(sw2, None, None, None, "unknown", "unknown", f"theory failed: {err}", applies)
    phase = T.phase(c1)
    verdict = "vanishing" if predicted < VANISHING else ("exploding" if predicted > EXPLODING else "stable")
    xi = scales.xi_grad
    if not math.isfinite(xi):
        scale = f"|xi_grad| = infinite: no exponential decay over depth {depth}"
    else:
        versus = "<<" if abs(xi) < depth / 3 else ("~" if abs(xi) < 3 * depth else ">>")
        scale = f"|xi_grad| = {abs(xi):.3g} layers {versus} depth {depth}"
    text = (f"chi1 = {c1:.3g} at sw2 = {sw2:.3g} ({phase}); {scale}; "
            f"predicted delta_1/delta_L = {short_number(predicted)} ({verdict})")
    if not applies:
        text += "; theory is for the plain chain, without the normalisation or skips"
    return Theory(sw2, c1, xi, predicted, phase, verdict, text, applies)


def _sample(data, seed: int) -> torch.Tensor:
    """The batch `train.run` hands to LSUV: 512 training rows from a generator seeded with the seed."""
    generator = torch.Generator().manual_seed(seed)
    return data.x_train[torch.randperm(data.x_train.shape[0], generator=generator)[:512]]


def probe_spec_at_init(spec, data, batch_size: int = PROBE_BATCH):
    """(diagnosis, model): the model `train.run(spec)` starts from, probed once at initialisation on
    `batch_size` training examples by `gradvet.checkup.probe_at_init` (seeded with the spec's seed)."""
    from gradvet.checkup import probe_at_init
    from gradvet.models.build import build
    from gradvet.probe import diagnose
    from gradvet.train.optim import make_loss

    n_out = 1 if data.task == "regression" else data.n_classes
    model = build(spec, data.n_features, n_out, data.sequence, sample=_sample(data, spec.seed))
    probe = probe_at_init(model, data, make_loss(spec, data.task), batch_size, spec.seed)
    return diagnose(probe), model


def _calibrate(model: torch.nn.Module, data, spec) -> float:
    """Seconds per SGD step of `model` (median of CALIBRATION_STEPS after one warm-up step)."""
    from gradvet.train.optim import make_loss, make_optimizer

    loss_fn = make_loss(spec, data.task)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(spec, params)
    x, y = data.x_train[: spec.batch_size], data.y_train[: spec.batch_size]
    times = []
    for i in range(CALIBRATION_STEPS + 1):
        start = _clock()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        if i:
            times.append(_clock() - start)
    return statistics.median(times)


def _layer_mean(diagnosis, name: str) -> float:
    return finite_mean(getattr(lay, name) for lay in diagnosis.layers)


def _train(spec, data) -> dict[str, Any]:
    from gradvet.train import run

    result = run(spec, probe=None, dataset=data)
    losses = [v for v in result.history.get("loss", []) if math.isfinite(v)]
    k = max(1, len(losses) // 10)
    diverged = result.status == "diverged"
    acc = result.metrics.get("test_accuracy")
    test_loss = result.metrics.get("test_loss")
    test_loss = float(test_loss) if test_loss is not None else math.nan
    if diverged:
        quality = 0.0
    elif data.task == "regression":
        var = float(data.y_test.double().var(unbiased=False))
        quality = max(0.0, 1.0 - test_loss / var) if var > 0 and math.isfinite(test_loss) else 0.0
    else:
        quality = float(acc)
    return {"quality": quality, "accuracy": None if acc is None or diverged else float(acc), "test_loss": test_loss,
            "loss_start": finite_mean(losses[:k]), "loss_end": finite_mean(losses[-k:]),
            "step_time": float(result.metrics.get("step_time", math.nan)), "status": result.status}


@dataclass
class _Job:
    """Everything one call of `choose` measures with."""

    data: Any
    acts: dict[str, Activation]
    inits: dict[str, str]
    depth: int
    width: int
    norm: str | None
    residual: bool
    optimizer: str
    lr: float
    batch_size: int
    steps: int
    q0: float
    rows: dict[str, CandidateResult] = field(default_factory=dict)

    def spec(self, name: str, seed: int):
        from gradvet.spec import RunSpec

        return RunSpec(data=self.data.name, activation=name, depth=self.depth, width=self.width,
                       init=self.inits[name], norm=self.norm, residual=self.residual, optimizer=self.optimizer,
                       lr=self.lr, batch_size=self.batch_size, steps=self.steps, seed=seed, eval_every=0)


def _measure(job: _Job, name: str, seed: int, calibrate: bool = False, budget_left: float | None = None) -> SeedResult:
    """One unit of work: (theory, on a candidate's first seed), the probe at init, the training run."""
    start = _clock()
    act = job.acts[name]
    row = job.rows.setdefault(name, CandidateResult(name=name, family=act.family, init=job.inits[name]))
    spec = job.spec(name, seed)
    diagnosis, model = probe_spec_at_init(spec, job.data)
    if row.theory is None:
        row.theory = theory_verdict(act, job.inits[name], job.depth, job.q0,
                                    _model_sw2(model) if job.inits[name] == "lsuv" else None,
                                    applies=job.norm is None and not job.residual)
    if calibrate and budget_left is not None:
        per_step = _calibrate(model, job.data, spec) * 1.15
        left = budget_left - (_clock() - start)
        if per_step > 0 and job.steps * per_step > left:
            job.steps = max(MIN_STEPS, int(left / per_step))
            spec = job.spec(name, seed)
    trained = _train(spec, job.data)
    result = SeedResult(seed=seed, ratio=float(diagnosis.ratio), dead_fraction=_layer_mean(diagnosis, "dead_fraction"),
                        saturated_fraction=_layer_mean(diagnosis, "saturated_fraction"),
                        seconds=0.0, **trained)
    result.seconds = _clock() - start
    row.seeds.append(result)
    return result


# ---------------------------------------------------------------- ranking, reasons, rules, advice

def score(row: CandidateResult, fastest: float) -> tuple[float, dict[str, float]]:
    """The documented score of a row and its penalties (see the module docstring)."""
    sat = row.saturated_fraction if math.isfinite(row.saturated_fraction) else 0.0
    dead = row.dead_fraction if math.isfinite(row.dead_fraction) else 0.0
    cost = math.log2(row.step_time / fastest) if fastest > 0 and math.isfinite(row.step_time) else 0.0
    penalties = {
        "gradient": W_GRADIENT * _decades(row.ratio),
        "dead": W_DEAD * dead,
        "saturated": W_SATURATED * max(0.0, sat - SATURATED_BY_DESIGN) / (1 - SATURATED_BY_DESIGN),
        "cost": W_COST * max(0.0, cost - COST_SLACK),
    }
    quality = row.quality if math.isfinite(row.quality) else 0.0
    return W_ACCURACY * quality - sum(penalties.values()), penalties


def _reason(row: CandidateResult, best: CandidateResult, fastest: float, quality_name: str, steps: int) -> str:
    """One line: the effects on the score, largest first, each with its measured number."""
    grad = f"first-layer gradient {short_number(row.ratio)} of the last"
    if math.isfinite(row.ratio) and row.ratio < VANISHING:
        grad += " (vanishing)"
    elif not math.isfinite(row.ratio) or row.ratio > EXPLODING:
        grad += " (exploding)"
    clauses: list[tuple[float, str]] = [(row.penalties.get("gradient", 0.0), grad)]
    # the accuracy shortfall carries its explanations (divergence, the loss curve) right behind it
    shortfall = best.quality - row.quality if row is not best else 0.0
    if row is best:
        clauses.append((math.inf, f"best: {quality_name} {row.quality:.3f}"))
    else:
        clauses.append((shortfall + 1e-9, f"{quality_name} {row.quality:.3f} ({shortfall:.3f} below {best.name})"))
    if row.diverged:
        clauses.append((shortfall + 2e-9, f"diverged on {row.diverged} of {len(row.seeds)} seeds"))
    if math.isfinite(row.loss_start) and math.isfinite(row.loss_end) and row.loss_end > FLAT * row.loss_start:
        what = "rose" if row.loss_end > row.loss_start / FLAT else "flat"
        clauses.append((shortfall, f"loss {what} over {steps} steps ({row.loss_start:.3g} -> {row.loss_end:.3g})"))
    if row.penalties.get("dead", 0) >= 0.005:
        clauses.append((row.penalties["dead"], f"{row.dead_fraction:.0%} dead units at init"))
    if row.penalties.get("saturated", 0) >= 0.005:
        clauses.append((row.penalties["saturated"], f"{row.saturated_fraction:.0%} saturated at init"))
    if row.penalties.get("cost", 0) >= 0.005:
        clauses.append((row.penalties["cost"], f"{row.step_time / fastest:.1f}x the fastest step time "
                                               f"({row.step_time * 1e3:.2g} ms)"))
    elif row is best:
        clauses.append((0.0, f"{row.step_time * 1e3:.2g} ms per step"))
    clauses.sort(key=lambda c: -c[0])
    return "; ".join(text for _, text in clauses)


def _rank(rows: list[CandidateResult], quality_name: str, steps: int) -> list[CandidateResult]:
    if not rows:
        return rows
    times = [r.step_time for r in rows if math.isfinite(r.step_time) and r.step_time > 0]
    fastest = min(times) if times else math.nan
    for r in rows:
        r.score, r.penalties = score(r, fastest)
    rows.sort(key=lambda r: -r.score)
    for i, r in enumerate(rows, 1):
        r.rank = i
    for r in rows:
        r.reason = _reason(r, rows[0], fastest, quality_name, steps)
    return rows


def _q(row: CandidateResult) -> str:
    """'0.952', or '0.952 +- 0.004' with the seed standard deviation."""
    return f"{row.quality:.3f}" + (f" +- {row.quality_sd:.3f}" if row.quality_sd is not None else "")


def within_spread(a: CandidateResult, b: CandidateResult) -> bool:
    """The accuracies of a and b differ by no more than the larger of their seed standard deviations."""
    sds = [sd for sd in (a.quality_sd, b.quality_sd) if sd is not None]
    return bool(sds) and abs(a.quality - b.quality) <= max(sds)


def _spread_note(a: CandidateResult, b: CandidateResult) -> str:
    return "; the difference is within the seed spread" if within_spread(a, b) else ""


def check_rules(rows: list[CandidateResult], depth: int, quality_name: str = "accuracy") -> list[Rule]:
    """The article's four rules against the measured rows (see the module docstring)."""
    by = {r.name: r for r in rows}
    relus = [r for r in rows if r.family == "relu"]
    sig, tanh, relu = by.get("sigmoid"), by.get("tanh"), by.get("relu")
    rules = []
    text = "ReLU (family) beats sigmoid in hidden layers"
    if sig is None or not relus:
        rules.append(Rule(1, text, NOT_MEASURED, "needs sigmoid and a ReLU-family candidate"))
    else:
        top = max(relus, key=lambda r: r.quality)
        rules.append(Rule(1, text, CONFIRMED if top.quality > sig.quality else NOT_HERE,
                          f"best ReLU-family {top.name} {quality_name} {_q(top)} vs sigmoid {_q(sig)}"
                          + _spread_note(top, sig)))
    text = "tanh beats sigmoid"
    if sig is None or tanh is None:
        rules.append(Rule(2, text, NOT_MEASURED, "needs tanh and sigmoid"))
    else:
        rules.append(Rule(2, text, CONFIRMED if tanh.quality > sig.quality else NOT_HERE,
                          f"tanh {quality_name} {_q(tanh)} vs sigmoid {_q(sig)}; first-layer gradient "
                          f"{short_number(tanh.ratio)} vs {short_number(sig.ratio)} of the last"
                          + _spread_note(tanh, sig)))
    text = f"sigmoid's gradient vanishes with depth (delta_1/delta_L < {VANISHING:g})"
    if sig is None:
        rules.append(Rule(3, text, NOT_MEASURED, "needs sigmoid"))
    else:
        vanishes = math.isfinite(sig.ratio) and sig.ratio < VANISHING
        predicted = sig.theory.predicted_ratio if sig.theory else None
        rules.append(Rule(3, text, CONFIRMED if vanishes else NOT_HERE,
                          f"measured delta_1/delta_L = {short_number(sig.ratio)} at depth {depth}"
                          + (f", theory {short_number(predicted)}" if predicted is not None else "")))
    text = f"ReLU is a good default (within {RELU_TOLERANCE:g} {quality_name} of the best)"
    if relu is None:
        rules.append(Rule(4, text, NOT_MEASURED, "needs relu"))
    else:
        top = max(rows, key=lambda r: r.quality)
        gap = top.quality - relu.quality
        rules.append(Rule(4, text, CONFIRMED if gap <= RELU_TOLERANCE + ROUNDING else NOT_HERE,
                          f"relu {_q(relu)} vs best {top.name} {_q(top)}, a gap of {gap:.3f}"))
    return rules


def _norm_advice(winner: CandidateResult | None, depth: int, norm: str | None, residual: bool) -> str:
    if winner is None:
        return "nothing measured"
    ratio = f"the winner's first-layer gradient is {short_number(winner.ratio)} of the last at depth {depth}"
    if norm or residual:
        kept = " and ".join([f"{norm} normalisation"] * bool(norm) + ["residual connections"] * residual)
        return f"keep {kept}: with {'them' if norm and residual else 'it'} {ratio}"
    if math.isfinite(winner.ratio) and 0.1 <= winner.ratio <= 10:
        return f"none needed: {ratio}"
    return f"add batch normalisation or residual connections: {ratio}"


def _init_advice(winner: CandidateResult | None) -> str:
    if winner is None:
        return "nothing measured"
    text = f"{winner.init} ({INIT_TEXT.get(winner.init, winner.init)})"
    if winner.init == "critical" and winner.theory and winner.theory.sw2:
        text += f", sw2* = {winner.theory.sw2:.4g}"
    return text


# ---------------------------------------------------------------- the recommender

def _resolve(candidates: Iterable[str] | str | None) -> dict[str, Activation]:
    if candidates is None:
        candidates = DEFAULT_CANDIDATES
    elif isinstance(candidates, str):
        candidates = split_candidates(candidates)
    acts: dict[str, Activation] = {}
    for text in candidates:
        if not isinstance(text, str) or not text.strip():
            raise GradvetError(f"candidate {text!r} is not an activation name or formula.")
        act = get_activation(text.strip())  # unknown names: a GradvetError with close matches
        key = act.name if act.source == "catalog" else text.strip()
        acts.setdefault(key, act)
    if not acts:
        raise GradvetError("no candidates given; list activation names or formulas, such as relu,tanh,sigmoid.")
    return acts


def choose(depth: int, width: int, data: str = "digits", task: str | None = None,
           candidates: Iterable[str] | str | None = None, norm: str | None = None, residual: bool = False,
           budget: float = 60.0, seeds: int = 2, steps: int = 300, lr: float = 0.1, optimizer: str = "sgd",
           batch_size: int = 64, progress: Callable[[str], None] | None = None) -> Choice:
    """Rank activations for an MLP of `depth` hidden layers of `width` units on `data`, by
    measurement (theory, a probe at init and `steps` of training on `seeds` seeds), within
    `budget` seconds. See the module docstring for the score, the inits and the rules."""
    start = _clock()
    validation.architecture(depth, width, batch_size)
    validation.whole_number("seeds", seeds, 1)
    validation.whole_number("steps", steps, 1, validation.MAX_STEPS, "MAX_STEPS")
    validation.positive_number("budget", budget)
    if norm == "none":
        norm = None
    validation.choice("norm", norm, NORMS)
    if task is not None and task not in TASKS:
        raise unknown("task", task, TASKS)
    acts = _resolve(candidates)
    from gradvet.data import load
    from gradvet.spec import RunSpec

    RunSpec(data=str(data), depth=depth, width=width, norm=norm, residual=residual, lr=lr, optimizer=optimizer,
            batch_size=batch_size, steps=steps)  # the same checks as every run, before any work
    dataset = load(data)
    if dataset.sequence:
        raise GradvetError(f"data {data!r} is a sequence task; choose ranks hidden activations of MLPs on flat "
                           "data (digits, mnist1d, mnist or a .npz of shape (N, F)).")
    task = task or dataset.task
    say = progress or (lambda _text: None)
    order = keep_order(list(acts))
    job = _Job(data=dataset, acts=acts, inits={n: match_init(a) for n, a in acts.items()}, depth=depth, width=width,
               norm=norm, residual=residual, optimizer=optimizer, lr=lr, batch_size=batch_size, steps=steps,
               q0=float(dataset.x_train.double().pow(2).mean()))

    def left() -> float:
        return budget - (_clock() - start)

    _warm_up()  # one-time library imports, so they do not inflate the first unit's cost estimate
    startup = _clock() - start
    units: list[float] = []  # seconds of each (candidate, seed) unit measured so far
    for seed in range(seeds):
        names = [name for name in order if name in job.rows] if seed else order
        if seed and statistics.fmean(units) * len(names) > left():
            break  # a further seed only when the whole pass fits: every candidate on the same seeds
        for name in names:
            if units and statistics.fmean(units) > left():
                break
            say(f"{name} seed {seed}" + ("" if units else " (estimating the cost)"))
            units.append(_measure(job, name, seed, calibrate=not units, budget_left=left()).seconds)
    rows = [job.rows[name] for name in order if name in job.rows]
    for r in rows:
        r.summarise()
    quality_name = "R2" if dataset.task == "regression" else "accuracy"
    _rank(rows, quality_name, job.steps)
    cut = [n for n in order if n not in job.rows]
    elapsed = _clock() - start
    winner = rows[0] if rows else None
    output_activation, output_advice = OUTPUT_ADVICE[task]
    if task != dataset.task:
        output_advice += f" (note: data {dataset.name!r} is {dataset.task}; the runs trained on it as it is)"
    return Choice(
        depth=depth, width=width, data=dataset.name, task=task, norm=norm, residual=residual, steps=job.steps,
        steps_asked=steps, seeds_asked=seeds, optimizer=optimizer, lr=lr, batch_size=batch_size, budget=float(budget),
        elapsed=elapsed, candidates=list(acts), rows=rows, cut=cut,
        budget_note=_budget_note(budget, elapsed, startup, order, rows, cut, seeds, steps, job.steps,
                                 statistics.fmean(units)),
        output_activation=output_activation, output_advice=output_advice, init_advice=_init_advice(winner),
        norm_advice=_norm_advice(winner, depth, norm, residual), rules=check_rules(rows, depth, quality_name),
        close_to_winner=[r.name for r in rows[1:] if within_spread(rows[0], r)], quality_name=quality_name,
        startup=startup, work=sum(units),
    )


def _warm_up() -> None:
    """Import what the first optimiser step imports (torch.optim pulls in torch._dynamo: seconds, once)."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _budget_note(budget: float, elapsed: float, startup: float, order: list[str], rows: list[CandidateResult],
                 cut: list[str], seeds: int, steps: int, steps_used: int, estimate: float) -> str:
    counts = sorted({len(r.seeds) for r in rows})
    seeds_text = " or ".join(str(c) for c in counts) if counts else "0"
    plural = "s" if counts and max(counts) > 1 else ""
    asked = f" ({seeds} asked)" if counts and max(counts) < seeds else ""
    parts = [f"budget {budget:g} s: measured {len(rows)} of {len(order)} candidates with {seeds_text} seed{plural}"
             f"{asked} in {elapsed:.1f} s ({startup:.1f} s of it loading data and libraries; about {estimate:.2g} s "
             "per candidate and seed)"]
    if cut:
        parts.append(f"cut: {', '.join(cut)}")
    if steps_used < steps:
        parts.append(f"steps cut from {steps} to {steps_used} so one run fits")
    return "; ".join(parts) + "."
