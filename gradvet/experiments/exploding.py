"""`exploding`: a net and an RNN driven into exploding gradients, and the remedies that hold.

Two nets, each trained with plain SGD, first as they are and then with one remedy at a time:

- MLP: 4 hidden ReLU layers of 64 units on `--data` (digits) with init "normal"
  (W, b ~ N(0, 1)). A ReLU layer with n inputs multiplies the forward and the
  backward signal by about sqrt(n / 2) (He et al. 2015), 5.7 for n = 64, so the
  first gradient is already ~1e4 and SGD at lr 0.1 overflows within a few steps.
- RNN: an Elman tanh RNN on the adding problem (T = 50) whose recurrent matrix
  W_hh is rescaled to spectral radius RHO = 2. Back through time
  dL/dh_t = dL/dh_T prod_{s>t} diag(tanh'(a_s)) W_hh; a radius above 1 is
  necessary for the product to grow but not sufficient, since tanh' <= 1 shrinks
  it (Pascanu, Mikolov & Bengio 2013, sec. 3.1): the spectral-radius table
  measures where it turns (radius 1.5 still vanishes here; 2 explodes).

Remedies: clipping the total gradient norm to CLIP (Pascanu et al. 2013, alg. 1)
and each component to CLIP_VALUE (Mikolov 2012), weight decay (L2), batch norm
and a smaller init (He; for the RNN a radius of 0.9) for the MLP, truncated BPTT
and an LSTM (same radius on each gate block of W_hh) for the RNN.

Why the RNN has its own loop: a RunSpec has no field for the spectral radius
of W_hh (its inits are named schemes; init "normal" gives a radius near
sqrt(64) = 8 and N(0, 1) gate weights, which make even an LSTM explode). So that
net is built with `gradvet.models.rnn`, rescaled, and trained by
`train_recurrent`: the engine's steps (seeded batches, total norm before
clipping, clip by norm then by value, stop at NaN/Inf, SGD with weight decay)
with a `gradvet.Probe` attached. The MLP runs go through the engine and the store.

For every run the table gives the step at which it diverged (NaN/Inf), the largest
total gradient norm before clipping and its growth over the first step's, the
largest norm of the gradient actually applied (after clipping: the Probe's
applied_grad_norm, read at the optimiser step), the final loss and the test score; a fix "holds" when the
run stays finite and its loss never exceeds BLOWUP times its first value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from gradvet.base.formatting import mean_sd_text
from gradvet.data import load
from gradvet.experiments.base import Context, experiment
from gradvet.models.rnn import SequenceModel, rnn
from gradvet.probe import Probe
from gradvet.probe.metrics.applied_grad_norm import AppliedGradNorm
from gradvet.spec import RunSpec
from gradvet.train.loop import BatchSampler, probe_every
from gradvet.train.through_time import gradient_through_time

CLIP = 1.0  # max total gradient norm (clip_grad_norm_)
CLIP_VALUE = 0.01  # max |component| (clip_grad_value_)
WEIGHT_DECAY = 0.1
BLOWUP = 10.0  # a loss above BLOWUP x its first value counts as blown up

MLP_STEPS, MLP_QUICK_STEPS = 300, 60
MLP_LR = 0.1

RHO = 2.0  # spectral radius of W_hh in the exploding RNN
SMALL_RHO = 0.9
RHO_SWEEP = (0.9, 1.5, 2.0, 3.0)
SEQ_LENGTH = 50
HIDDEN = 64
RNN_LR = 0.05
BATCH = 64
TBPTT = 5
RNN_STEPS, RNN_QUICK_STEPS = 300, 60
PROFILE_SEQUENCES = 256


# -- the MLP: RunSpecs through the engine ---------------------------------------------------------
def mlp_base(ctx: Context, steps: int) -> RunSpec:
    """The exploding MLP on ctx.data (digits unless a flat dataset is given)."""
    data = ctx.data if ctx.data not in ("adding", "memory") else "digits"
    options = {"path": ctx.options["mnist_dir"]} if data == "mnist" and ctx.options.get("mnist_dir") else {}
    return RunSpec(data=data, model="mlp", activation="relu", depth=4, width=64, init="normal", optimizer="sgd",
                   lr=MLP_LR, steps=steps, eval_every=0, data_options=options)


MLP_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "none": ("no remedy", {}),
    "clip": (f"clip norm {CLIP:g}", {"clip": CLIP}),
    "clip_value": (f"clip value {CLIP_VALUE:g}", {"clip_value": CLIP_VALUE}),
    "weight_decay": (f"weight decay {WEIGHT_DECAY:g}", {"weight_decay": WEIGHT_DECAY}),
    "batch_norm": ("batch norm", {"norm": "batch"}),
    "smaller_init": ("smaller init (He)", {"init": "he"}),
}


# -- the RNN: own model and loop ---------------------------------------------------------------------
@dataclass(frozen=True)
class RecurrentCase:
    """One RNN run: model kind, spectral radius of W_hh (per gate block), and remedies."""

    label: str
    kind: str = "rnn"
    rho: float = RHO
    clip: float | None = None
    clip_value: float | None = None
    weight_decay: float = 0.0
    tbptt: int | None = None


RNN_CASES: dict[str, RecurrentCase] = {
    "none": RecurrentCase("no remedy"),
    "clip": RecurrentCase(f"clip norm {CLIP:g}", clip=CLIP),
    "clip_value": RecurrentCase(f"clip value {CLIP_VALUE:g}", clip_value=CLIP_VALUE),
    "weight_decay": RecurrentCase(f"weight decay {WEIGHT_DECAY:g}", weight_decay=WEIGHT_DECAY),
    "smaller_init": RecurrentCase(f"smaller init (radius {SMALL_RHO:g})", rho=SMALL_RHO),
    "tbptt": RecurrentCase(f"truncated BPTT k={TBPTT}", tbptt=TBPTT),
    "lstm": RecurrentCase(f"LSTM (radius {RHO:g} per gate)", kind="lstm"),
}


def spectral_radius(matrix: torch.Tensor) -> float:
    """max |eigenvalue| of a square matrix."""
    return float(torch.linalg.eigvals(matrix.detach().double()).abs().max())


def recurrent_blocks(model: SequenceModel) -> list[torch.Tensor]:
    """The square recurrent matrices of a sequence model, as views into its parameters:
    W_hh of an Elman cell, or each gate's (hidden x hidden) block of an LSTM/GRU's weight_hh."""
    if model.kind == "rnn":
        return [model.cell.hh.weight]
    weight = model.cell.weight_hh
    return list(weight.chunk(weight.shape[0] // model.hidden_size, dim=0))


def recurrent_model(kind: str, rho: float, seed: int, input_size: int = 2, hidden: int = HIDDEN) -> SequenceModel:
    """A tanh RNN / LSTM / GRU with PyTorch's default init, every recurrent block then
    rescaled to spectral radius `rho`: W <- rho W / max|eig(W)| (as in echo-state networks)."""
    model = rnn(kind, input_size, 1, hidden_size=hidden, activation="tanh", init="default", seed=seed)
    with torch.no_grad():
        for block in recurrent_blocks(model):
            block.mul_(rho / spectral_radius(block))
    return model


def total_norm(params: Iterable[torch.Tensor]) -> float:
    """sqrt(sum ||g||^2) over the parameters' gradients."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


@dataclass
class Trained:
    """What `train_recurrent` returns: per-step history, probe rows, init profile, metrics."""

    history: dict[str, list[float]]
    rows: list[tuple[int, str, str, float]]
    profile: list[float]
    diverged_at: int | None
    test_loss: float
    metrics: dict[str, Any] = field(default_factory=dict)


def train_recurrent(case: RecurrentCase, data, steps: int, seed: int, lr: float = RNN_LR) -> Trained:
    """Train the case's net with SGD the way the engine does, with a Probe on the same
    sampled steps as the engine's (every probe_every(steps)-th)."""
    model = recurrent_model(case.kind, case.rho, seed, data.n_features)
    loss_fn = nn.MSELoss()
    profile = gradient_through_time(model, loss_fn, data.x_test[:PROFILE_SEQUENCES], data.y_test[:PROFILE_SEQUENCES])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, weight_decay=case.weight_decay)
    sampler = BatchSampler(data.x_train.shape[0], BATCH, torch.Generator().manual_seed(seed))
    history: dict[str, list[float]] = {"step": [], "loss": [], "grad_norm": []}
    diverged_at = None
    model.tbptt = case.tbptt
    with Probe(model, optimizer, every=probe_every(steps)) as probe:
        for step in range(1, steps + 1):
            idx = sampler.next()
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = total_norm(params)  # before clipping, as the engine records it
            if case.clip is not None:
                torch.nn.utils.clip_grad_norm_(params, case.clip)
            if case.clip_value is not None:
                torch.nn.utils.clip_grad_value_(params, case.clip_value)
            history["step"].append(step)
            history["loss"].append(float(loss.detach()))
            history["grad_norm"].append(norm)
            if not (math.isfinite(history["loss"][-1]) and math.isfinite(norm)):
                diverged_at = step
                break
            optimizer.step()
    model.tbptt = None
    model.eval()
    with torch.no_grad():
        test_loss = float(loss_fn(model(data.x_test), data.y_test))
    return Trained(history, probe.trace.rows, profile, diverged_at, test_loss)


# -- reading runs ----------------------------------------------------------------------------------
def applied_norms(rows: Iterable[Sequence]) -> dict[int, float]:
    """Total norm of the gradient the optimiser applied, per probed training step (1-based):
    sqrt(sum over layers of applied_grad_norm^2), the Probe's norm of .grad read at the optimiser
    step, after clipping (its weight_grad_norm and bias_grad_norm are read before clipping); NaN
    counts as inf."""
    sums: dict[int, float] = {}
    for step, _layer, metric, value in rows:
        if metric == AppliedGradNorm.name:
            v = value if not math.isnan(value) else math.inf
            sums[int(step) + 1] = sums.get(int(step) + 1, 0.0) + v * v
    return {s: math.sqrt(v) for s, v in sorted(sums.items())}


def _max(values: Iterable[float]) -> float:
    """Largest value, NaN counted as inf (nan for none)."""
    values = [math.inf if math.isnan(v) else v for v in values]
    return max(values) if values else math.nan


def summary(history: dict[str, list], rows, diverged_at: int | None, test: float | None) -> dict[str, Any]:
    """One run's numbers: divergence, gradient norms before and after clipping, losses."""
    loss, norm = history["loss"], history["grad_norm"]
    first_loss, first_norm = loss[0], norm[0]
    max_norm = _max(norm)
    max_loss = _max(loss)
    return {
        "diverged_at": diverged_at,
        "first_grad_norm": first_norm,
        "max_grad_norm": max_norm,
        "growth": max_norm / first_norm if first_norm > 0 else math.inf,
        "max_applied_norm": _max(applied_norms(rows).values()),
        "first_loss": first_loss,
        "max_loss": max_loss,
        "final_loss": loss[-1],
        "test": test,
        "holds": diverged_at is None and max_loss <= BLOWUP * first_loss,
    }


def collect(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed summaries -> lists per number; `holds` only when it holds for every seed."""
    out: dict[str, Any] = {k: [s[k] for s in per_seed] for k in per_seed[0] if k != "holds"}
    out["holds"] = all(s["holds"] for s in per_seed)
    return out


# -- the experiment ----------------------------------------------------------------------------------
@experiment("exploding", "Exploding gradients in an MLP and an RNN, and the remedies that hold")
def exploding_experiment(ctx: Context) -> None:
    mlp_steps = MLP_QUICK_STEPS if ctx.quick else MLP_STEPS
    rnn_steps = RNN_QUICK_STEPS if ctx.quick else RNN_STEPS
    base = mlp_base(ctx, mlp_steps)
    mlp: dict[str, dict[str, Any]] = {}
    mlp_curves: dict[str, dict[str, list]] = {}
    for key, (label, change) in MLP_CASES.items():
        spec = base.replace(**change)
        runs = ctx.runs_over_seeds(spec)
        mlp[key] = collect([summary(r.history, r.layer_records, r.diverged_at, r.metrics.get("test_accuracy"))
                            for r in runs])
        mlp[key].update(label=label, spec=spec.to_dict())
        mlp_curves[label] = _curve(runs[0].history)
    data = load("adding", length=SEQ_LENGTH)
    recurrent: dict[str, dict[str, Any]] = {}
    rnn_curves: dict[str, dict[str, list]] = {}
    for key, case in RNN_CASES.items():
        trained = [train_recurrent(case, data, rnn_steps, seed) for seed in range(ctx.seeds)]
        recurrent[key] = collect([summary(t.history, t.rows, t.diverged_at, t.test_loss) for t in trained])
        ratios = [t.profile[0] / t.profile[-1] if t.profile[-1] else math.nan for t in trained]
        recurrent[key].update(label=case.label, case=asdict(case), profile_ratio_init=ratios)
        rnn_curves[case.label] = _curve(trained[0].history)
    radius = radius_sweep(data)
    ctx.result["exploding"] = {
        "mlp": mlp, "rnn": recurrent, "spectral_radius": radius,
        "settings": {"clip": CLIP, "clip_value": CLIP_VALUE, "weight_decay": WEIGHT_DECAY, "blowup": BLOWUP,
                     "mlp_steps": mlp_steps, "mlp_lr": MLP_LR, "rho": RHO, "small_rho": SMALL_RHO,
                     "seq_length": SEQ_LENGTH, "hidden": HIDDEN, "rnn_lr": RNN_LR, "batch": BATCH,
                     "tbptt": TBPTT, "rnn_steps": rnn_steps},
    }
    _tables(ctx, base, mlp, recurrent, radius, rnn_steps)
    for net, cases in (("MLP", mlp), ("RNN", recurrent)):
        none, clip = cases["none"], cases["clip"]
        ctx.say(f"{net}, no remedy: diverged at step {_diverged(none['diverged_at'])}, gradient norm from "
                f"{mean_sd_text(none['first_grad_norm'])} to {mean_sd_text(none['max_grad_norm'])}; clipped to {CLIP:g}: applied norm "
                f"at most {mean_sd_text(clip['max_applied_norm'])}, {'holds' if clip['holds'] else 'does not hold'}.")
    ctx.figure("curves", "exploding.curves",
               {"clip": CLIP, "nets": {"MLP (ReLU, init N(0,1), SGD lr 0.1)": mlp_curves,
                                       f"RNN (tanh, W_hh radius {RHO:g}, adding T={SEQ_LENGTH}, SGD lr {RNN_LR:g})":
                                           rnn_curves}})


def radius_sweep(data, seed: int = 0) -> dict[float, dict[str, float]]:
    """||dL/dh_0|| / ||dL/dh_T-1|| at initialisation for each spectral radius in RHO_SWEEP,
    vanilla RNN and LSTM (one forward/backward over PROFILE_SEQUENCES test sequences)."""
    out: dict[float, dict[str, float]] = {}
    x, y = data.x_test[:PROFILE_SEQUENCES], data.y_test[:PROFILE_SEQUENCES]
    for rho in RHO_SWEEP:
        out[rho] = {}
        for kind in ("rnn", "lstm"):
            profile = gradient_through_time(recurrent_model(kind, rho, seed, data.n_features), nn.MSELoss(), x, y)
            out[rho][kind] = profile[0] / profile[-1] if profile[-1] else math.nan
    return out


def _diverged(values: Sequence[int | None]) -> str:
    return ", ".join("-" if v is None else str(v) for v in values)


def _tables(ctx: Context, base: RunSpec, mlp, recurrent, radius, rnn_steps: int) -> None:
    rows = []
    for net, cases in (("MLP", mlp), ("RNN", recurrent)):
        for c in cases.values():
            rows.append([net, c["label"], _diverged(c["diverged_at"]), mean_sd_text(c["max_grad_norm"]), mean_sd_text(c["growth"]),
                         mean_sd_text(c["max_applied_norm"]), mean_sd_text(c["final_loss"]), mean_sd_text(c["test"]),
                         "yes" if c["holds"] else "no"])
    ctx.table(
        "Exploding gradients and the remedies",
        ["net", "remedy", "diverged at", "max ||g|| before clip", "growth max/first", "max ||g|| applied",
         "final loss", "test acc / MSE", "holds"],
        rows,
        note=(f"MLP: {base.data}, 4x64 ReLU, init N(0,1), SGD lr {MLP_LR:g}, {base.steps} steps (engine). "
              f"RNN: adding T={SEQ_LENGTH}, hidden {HIDDEN}, tanh, W_hh spectral radius {RHO:g}, SGD lr {RNN_LR:g}, "
              f"{rnn_steps} steps (own loop). 'applied' = after clipping, read by the Probe at the optimiser step on "
              f"its sampled steps (every k-th step, k = {probe_every(base.steps)} MLP, {probe_every(rnn_steps)} RNN). "
              f"Holds = no NaN/Inf and the loss never above {BLOWUP:g}x its first value. Test: accuracy (MLP), MSE (RNN). "
              f"Weight decay shrinks W by (1 - lr wd) per step, a time scale of 1/(lr wd) = {1 / (MLP_LR * WEIGHT_DECAY):.0f} "
              f"(MLP) and {1 / (RNN_LR * WEIGHT_DECAY):.0f} (RNN) steps."),
    )
    ctx.table(
        "Spectral radius of W_hh at initialisation: ||dL/dh_0|| / ||dL/dh_T-1||",
        ["radius", "vanilla RNN (tanh)", "LSTM (same radius per gate)"],
        [[f"{rho:g}", f"{r['rnn']:.1e}", f"{r['lstm']:.1e}"] for rho, r in radius.items()],
        note=(f"Adding problem, T={SEQ_LENGTH}. A radius above 1 is necessary for the tanh RNN's gradient to grow "
              "back through time, not sufficient: tanh' <= 1 shrinks every factor (Pascanu et al. 2013)."),
    )


def _curve(history: dict[str, list]) -> dict[str, list]:
    """What the curves figure draws of a run's history: step, loss and gradient norm before clipping."""
    return {key: list(history[key]) for key in ("step", "loss", "grad_norm")}

