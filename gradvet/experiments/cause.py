"""`cause`: the article's derivation of the vanishing gradient, measured.

A chain of single sigmoid neurons, a_j = sigma(z_j), z_j = w_j a_{j-1} + b_j,
C a cost of a_D (Nielsen, NNDL ch. 5):

    dC/db_1 = sigma'(z_1) w_2 sigma'(z_2) w_3 sigma'(z_3) ... w_D sigma'(z_D) dC/da_D.

Each layer brings an activation-derivative factor sigma'(z_j) <= 1/4 and a
weight factor w_j; while every |w_j| <= 1 the product is at most (1/4)^D. The
exploding case: w_j = 100 with biases b_j = -100 a_{j-1}, so z_j = 0 and each
factor is 100 sigma'(0) = 25. It is rare: |w sigma'(wa + b)| >= 1 needs
|w| >= 4, and then holds only for inputs a in a window of width

    (2/|w|) ln(|w| (1 + sqrt(1 - 4/|w|)) / 2 - 1),

largest (about 0.45) near |w| = 6.9.

Real layers are not single neurons: in a layer of n units the backward signal
is multiplied by W^T, and with N(0, 1) entries ||W^T g|| is about sqrt(n) ||g||,
not a factor below 1. So a wide sigmoid net with N(0, 1) weights vanishes far
less than the chain suggests (its units saturate instead), while fan-in-scaled
inits (Nielsen's N(0, 1/n_in), Xavier) keep the weight factor near 1 and leave
sigma' to shrink the signal by orders of magnitude. Those factors are measured
with gradvet's Probe (per-layer backward gains) on sigmoid MLPs at
initialisation, each a one-step run kept in the store.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from gradvet.experiments.base import Context, experiment, fmt_mean_sd, mean_sd
from gradvet.spec import RunSpec

CHAIN_DEPTH = 4  # Nielsen's picture: four neurons
EXPLODING_W = 100.0
MC_DEPTHS = (1, 2, 4, 6, 8, 10)
WINDOW_W = (3.0, 4.1, 4.5, 5.0, 6.0, 6.9, 8.0, 10.0, 20.0, 50.0, 100.0)
SHIFTS = (0.0, 0.001, 0.005, 0.01, 0.05)
INITS = ("normal", "nielsen", "xavier")


# -- the scalar chain ---------------------------------------------------------------------------------
def sigmoid_prime(z):
    """sigma'(z) = sigma(z) sigma(-z), accurate far into the tails (no 1 - sigma(z) cancellation)."""
    return expit(z) * expit(-np.asarray(z))


def scalar_chain(w, b, x) -> dict[str, np.ndarray]:
    """A chain of single sigmoid neurons with weights w[..., j], biases b[..., j] and input x[...].

    Returns arrays over (..., D): z, a, act_factor = sigma'(z_j), factor = w_j sigma'(z_j) (what
    the backward signal is multiplied by from neuron j to neuron j-1), and dC_db = dC/db_j / dC/da_D
    = sigma'(z_j) * prod_{k > j} w_k sigma'(z_k)."""
    w, b = np.asarray(w, dtype=float), np.asarray(b, dtype=float)
    a_prev = np.asarray(x, dtype=float)
    zs, as_ = [], []
    for j in range(w.shape[-1]):
        z = w[..., j] * a_prev + b[..., j]
        a_prev = expit(z)
        zs.append(z)
        as_.append(a_prev)
    z, a = np.stack(zs, axis=-1), np.stack(as_, axis=-1)
    act = sigmoid_prime(z)
    factor = w * act
    above = np.ones_like(factor)  # prod_{k > j} factor_k
    above[..., :-1] = np.cumprod(factor[..., :0:-1], axis=-1)[..., ::-1]
    return {"z": z, "a": a, "act_factor": act, "factor": factor, "dC_db": act * above}


def exploding_chain(depth: int = CHAIN_DEPTH, w: float = EXPLODING_W, x: float = 0.5,
                    shift: float = 0.0) -> dict[str, np.ndarray]:
    """The chain with every weight `w` and biases chosen so that z_j = 0 for the input `x`
    (b_1 = -w x, then b_j = -w sigma(0)), fed the input x + shift."""
    weights = np.full(depth, float(w))
    biases = np.full(depth, -w * 0.5)
    biases[0] = -w * x
    return scalar_chain(weights, biases, x + shift)


def window_width(w):
    """Width of the set of inputs a with |w sigma'(wa + b)| >= 1: zero for |w| < 4, else
    (2/|w|) ln(|w| (1 + sqrt(1 - 4/|w|)) / 2 - 1) (Nielsen, NNDL ch. 5, problem). Any b."""
    w = np.abs(np.asarray(w, dtype=float))
    inside = w >= 4.0
    safe = np.where(inside, w, 4.0)
    width = (2.0 / safe) * np.log(safe * (1.0 + np.sqrt(1.0 - 4.0 / safe)) / 2.0 - 1.0)
    out = np.where(inside, width, 0.0)
    return float(out) if out.ndim == 0 else out


def widest_window() -> tuple[float, float]:
    """(|w|, width) where the window is widest."""
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(lambda v: -window_width(v), bounds=(4.0, 100.0), method="bounded",
                           options={"xatol": 1e-6})
    return float(best.x), float(window_width(best.x))


def measured_window(w: float, step: float = 1e-5) -> float:
    """The window's width counted on a grid of inputs a in [-2, 2] (b = 0)."""
    a = np.arange(-2.0, 2.0, step)
    return float(np.count_nonzero(np.abs(w * sigmoid_prime(w * a)) >= 1.0) * step)


def random_chains(n: int, depth: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, b, x) of `n` chains: w, b ~ N(0, 1) (Nielsen's start), shape (n, depth); x ~ U(0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, depth)), rng.standard_normal((n, depth)), rng.uniform(size=n)


# -- real nets, through the Probe ---------------------------------------------------------------------
def layer_factors(records: list[tuple], depth: int, step: int = 0) -> dict[str, list[float]]:
    """Per hidden layer j (first to last), from a probe trace at `step`: the activation factor
    ||dL/dz_j|| / ||dL/da_j||, the weight factor of the map above it ||dL/da_j|| / ||dL/dz_{j+1}||
    (the read-out's for the last), their product, ||dL/dz_j||, ||dL/db_j|| and the saturated fraction."""
    from gradvet.probe import Trace

    at = Trace(records).at(step)
    above = [f"hidden.{j + 1}.linear" for j in range(depth - 1)] + ["out"]
    act = [at[f"hidden.{j}.act"]["gain"] for j in range(depth)]
    weight = [at[name]["gain"] for name in above]
    return {
        "act_factor": act,
        "weight_factor": weight,
        "product": [a * w for a, w in zip(act, weight)],
        "dz_norm": [at[f"hidden.{j}.linear"]["output_grad_norm"] for j in range(depth)],
        "bias_grad": [at[f"hidden.{j}.linear"]["bias_grad_norm"] for j in range(depth)],
        "saturated": [at[f"hidden.{j}.act"]["saturated_fraction"] for j in range(depth)],
    }


def init_std(init: str, n_in: int, n_out: int) -> float:
    """The standard deviation of a weight under `init` (normal, nielsen, xavier)."""
    return {"normal": 1.0, "nielsen": 1.0 / math.sqrt(n_in), "xavier": math.sqrt(2.0 / (n_in + n_out))}[init]


def net_spec(data: str, data_options: tuple, depth: int, width: int, init: str, seed: int = 0) -> RunSpec:
    """A sigmoid MLP probed on one batch at initialisation (a one-step run)."""
    return RunSpec(data=data, data_options=data_options, activation="sigmoid", depth=depth, width=width, init=init,
                   steps=1, batch_size=512, eval_every=0, seed=seed)


def _geomean(values) -> float:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


# -- the experiment -----------------------------------------------------------------------------------
@experiment("cause", "The cause: activation-derivative and weight factors, chain by chain and layer by layer")
def cause(ctx: Context) -> None:
    _chain_tables(ctx)
    _monte_carlo(ctx, 20_000 if ctx.quick else 200_000)
    _exploding(ctx)
    _window(ctx)
    _real_nets(ctx)


def _chain_rows(chain: dict[str, np.ndarray], w: np.ndarray) -> list[list]:
    depth = len(w)
    return [[j + 1, float(chain["z"][j]), float(chain["act_factor"][j]), float(w[j]), float(abs(chain["factor"][j])),
             float(abs(chain["dC_db"][j])), 0.25 ** (depth - j)] for j in range(depth)]


CHAIN_COLUMNS = ["neuron j", "z_j", "sigma'(z_j)", "w_j", "|w_j sigma'(z_j)|", "|dC/db_j| / |dC/da_D|",
                 "(1/4)^(D-j+1)"]


def _chain_tables(ctx: Context) -> None:
    rng = np.random.default_rng(0)
    w, b, x = rng.standard_normal(CHAIN_DEPTH), rng.standard_normal(CHAIN_DEPTH), float(rng.uniform())
    chain = scalar_chain(w, b, x)
    big = [j + 1 for j in range(1, CHAIN_DEPTH) if abs(w[j]) > 1]
    bound = ("every |w_j| <= 1 (j >= 2), so the bound holds" if not big else
             f"|w_j| > 1 for j = {', '.join(map(str, big))}, so the bound need not hold there")
    ctx.table(f"A chain of {CHAIN_DEPTH} sigmoid neurons, w, b ~ N(0,1), input x = {x:.3g}", CHAIN_COLUMNS,
              _chain_rows(chain, w),
              "dC/db_j = sigma'(z_j) * prod_{k>j} w_k sigma'(z_k) * dC/da_D; sigma' <= 1/4, so the product is at "
              f"most (1/4)^(D-j+1) while the weights are at most 1 in size; here {bound}.")
    ctx.result["chain"] = {"w": w.tolist(), "b": b.tolist(), "x": x,
                           **{k: v.tolist() for k, v in chain.items()}}


def _monte_carlo(ctx: Context, n: int) -> None:
    w, b, x = random_chains(n, max(MC_DEPTHS))
    factors = np.abs(scalar_chain(w, b, x)["factor"]).ravel()
    rows, result = [], []
    for depth in MC_DEPTHS:
        chain = scalar_chain(w[:, :depth], b[:, :depth], x)
        ratio = np.abs(chain["dC_db"][:, 0])
        bound = 0.25 ** depth
        entry = {"depth": depth, "median": float(np.median(ratio)), "p99": float(np.quantile(ratio, 0.99)),
                 "max": float(ratio.max()), "bound": bound, "within_bound": float(np.mean(ratio <= bound)),
                 "act_product_max": float(np.prod(chain["act_factor"], axis=-1).max()),
                 "at_least_1": float(np.mean(ratio >= 1.0))}
        result.append(entry)
        rows.append([depth, entry["median"], entry["p99"], entry["max"], bound, f"{100 * entry['within_bound']:.1f}%",
                     entry["act_product_max"], f"{100 * entry['at_least_1']:.3f}%"])
    ctx.table(f"{n:,} random chains (w, b ~ N(0,1), x ~ U(0,1)): |dC/db_1| / |dC/da_D|",
              ["depth D", "median", "99th pct", "max", "(1/4)^D", "within (1/4)^D", "max prod sigma'", ">= 1"], rows,
              f"Per factor |w sigma'(z)|: {100 * np.mean(factors < 0.25):.1f}% below 1/4, median "
              f"{np.median(factors):.3g}, {100 * np.mean(factors >= 1):.4f}% at least 1. The product of the "
              "sigma' factors never exceeds (1/4)^D; chains above (1/4)^D have some |w| > 1.")
    ctx.result["random_chains"] = {"n": n, "by_depth": result, "factor_median": float(np.median(factors)),
                                   "factor_below_quarter": float(np.mean(factors < 0.25)),
                                   "factor_at_least_1": float(np.mean(factors >= 1))}


def _exploding(ctx: Context) -> None:
    chain = exploding_chain()
    w = np.full(CHAIN_DEPTH, EXPLODING_W)
    ctx.table(f"The exploding case: w = {EXPLODING_W:g}, biases keep every z at 0", CHAIN_COLUMNS,
              _chain_rows(chain, w),
              f"Each factor is w sigma'(0) = {EXPLODING_W / 4:g}: |dC/db_1| = (1/4) {EXPLODING_W / 4:g}"
              f"^{CHAIN_DEPTH - 1} = {0.25 * (EXPLODING_W / 4) ** (CHAIN_DEPTH - 1):g} |dC/da_D|.")
    rows = []
    for shift in SHIFTS:
        moved = exploding_chain(shift=shift)
        rows.append([shift, *(float(z) for z in moved["z"]), float(abs(moved["dC_db"][0]))])
    ctx.table("... and how fragile it is: the same chain with its input moved by delta",
              ["delta", *(f"z_{j + 1}" for j in range(CHAIN_DEPTH)), "|dC/db_1| / |dC/da_D|"], rows,
              "z_1 = w delta; the next neurons then saturate and the product collapses.")
    ctx.result["exploding"] = {"w": EXPLODING_W, "factor": [float(f) for f in chain["factor"]],
                               "dC_db1": float(chain["dC_db"][0]),
                               "shifted": [{"delta": r[0], "dC_db1": r[-1]} for r in rows]}


def _window(ctx: Context) -> None:
    best_w, best = widest_window()
    rows = [[w, window_width(w), measured_window(w)] for w in WINDOW_W]
    ctx.table("Why exploding is rare: the window of inputs a where |w sigma'(wa + b)| >= 1",
              ["|w|", "width (formula)", "width (counted, step 1e-5)"], rows,
              f"(2/|w|) ln(|w|(1 + sqrt(1 - 4/|w|))/2 - 1): zero below |w| = 4, widest ({best:.3f}) at "
              f"|w| = {best_w:.2f}, then shrinking like 2 ln|w| / |w|.")
    grid = np.geomspace(4.0, 1000.0, 600)
    ctx.figure("window", "cause.window",
               {"formula_w": grid.tolist(), "formula_width": window_width(grid).tolist(),
                "counted_w": [r[0] for r in rows], "counted_width": [r[2] for r in rows],
                "widest_w": best_w, "widest": best})
    ctx.result["window"] = {"w": list(WINDOW_W), "width": [r[1] for r in rows], "counted": [r[2] for r in rows],
                            "widest_w": best_w, "widest": best}


def _real_nets(ctx: Context) -> None:
    from gradvet.data import load

    depth = 6 if ctx.quick else 10
    widths = (30, 256) if ctx.quick else (30, 128, 512)
    data, options = ctx.data_spec()
    dataset = load(data, **dict(options))
    nets = []
    for width in widths:
        for init in INITS:
            runs = ctx.runs_over_seeds(net_spec(data, options, depth, width, init), dataset=dataset)
            nets.append({"init": init, "width": width,
                         "seeds": [layer_factors(run.layer_records, depth) for run in runs]})
    for net in nets:
        seeds = net["seeds"]
        # hidden-to-hidden maps only (the read-out above the last hidden layer is 10 x n)
        net["weight_factor"] = [_geomean(f["weight_factor"][:-1]) for f in seeds]
        net["act_factor"] = [_geomean(f["act_factor"]) for f in seeds]
        net["product"] = [_geomean(f["product"][:-1]) for f in seeds]
        net["first_last"] = [f["bias_grad"][0] / f["bias_grad"][-1] for f in seeds]
        net["saturated"] = [float(np.mean(f["saturated"])) for f in seeds]
        net["predicted_weight_factor"] = math.sqrt(net["width"]) * init_std(net["init"], net["width"], net["width"])
    _layer_table(ctx, next(n for n in nets if n["init"] == "nielsen" and n["width"] == widths[0]), depth)
    bound = 0.25 ** (depth - 1)
    ctx.table(f"Where the scalar chain misleads: sigmoid nets of {depth} hidden layers at initialisation",
              ["init", "width n", "weight factor", "sqrt(n) sd(w)", "sigma' factor", "product", "first/last ||dC/db||",
               f"(1/4)^{depth - 1}", "saturated"],
              [[n["init"], n["width"], fmt_mean_sd(n["weight_factor"]), n["predicted_weight_factor"],
                fmt_mean_sd(n["act_factor"]), fmt_mean_sd(n["product"]), fmt_mean_sd(n["first_last"]), bound,
                fmt_mean_sd(n["saturated"], 2)] for n in nets],
              "Measured by gradvet.Probe on one batch of 512: weight factor = ||dL/da_j|| / ||dL/dz_{j+1}|| "
              "through W^T, sigma' factor = ||dL/dz_j|| / ||dL/da_j||, geometric means over the layers; "
              "saturated: units with sigma'(z) < 5% of 1/4. normal: W, b ~ N(0,1); nielsen: W ~ N(0,1/n_in), "
              "b ~ N(0,1); xavier: Var W = 2/(n_in+n_out), b = 0.")
    statement = _statement(nets, widths, depth, ctx.result["random_chains"]["factor_median"])
    ctx.say(statement)
    _profile_figure(ctx, nets, depth)
    ctx.result["real_nets"] = {
        "depth": depth, "widths": list(widths), "statement": statement,
        "nets": [{k: v for k, v in n.items() if k != "seeds"} | {"layers": _mean_layers(n["seeds"])} for n in nets],
    }


def _mean_layers(seeds: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    return {key: [mean_sd(col)[0] for col in zip(*(s[key] for s in seeds))] for key in seeds[0]}


def _layer_table(ctx: Context, net: dict, depth: int) -> None:
    layers = _mean_layers(net["seeds"])
    last = layers["dz_norm"][-1]
    rows = [[j + 1, layers["act_factor"][j], layers["weight_factor"][j], layers["product"][j],
             layers["dz_norm"][j] / last, 0.25 ** (depth - 1 - j), layers["bias_grad"][j]] for j in range(depth)]
    seeds = f", mean over {ctx.seeds} seeds" if ctx.seeds > 1 else ""
    ctx.table(f"A real deep net, layer by layer: sigmoid, {depth} x {net['width']} units, Nielsen's init, "
              f"on {ctx.data}{seeds}",
              ["layer j", "sigma' factor", "weight factor above", "product", "||dL/dz_j|| / ||dL/dz_D||",
               "(1/4)^(D-j)", "||dL/db_j||"], rows,
              "The chain's two factors, measured per layer by gradvet.Probe (norms over a batch of 512); "
              "'weight factor above' is W_{j+1}^T's gain (the read-out's for the last layer).")


def _statement(nets: list[dict], widths: tuple[int, ...], depth: int, chain_median: float) -> str:
    def get(init: str, width: int) -> dict:
        return next(n for n in nets if n["init"] == init and n["width"] == width)

    wide = widths[-1]
    normal, nielsen, xavier = get("normal", wide), get("nielsen", wide), get("xavier", wide)
    narrow = get("normal", widths[0])
    m = lambda values: mean_sd(values)[0]  # noqa: E731
    return (
        f"Where the scalar chain misleads: a single neuron's weight w ~ N(0,1) is a factor of about "
        f"{math.sqrt(2 / math.pi):.2f} (E|w|), and the chain's typical factor |w sigma'(z)| is {chain_median:.2g}. "
        f"A layer of n units multiplies the backward signal by W^T instead, and with N(0,1) weights that is about "
        f"sqrt(n): measured {m(narrow['weight_factor']):.3g} at n = {widths[0]} (sqrt = {math.sqrt(widths[0]):.3g}) "
        f"and {m(normal['weight_factor']):.3g} at n = {wide} (sqrt = {math.sqrt(wide):.3g}). So the {depth}-layer "
        f"sigmoid net of width {wide} with N(0,1) weights does not vanish as the chain says: its first layer's "
        f"||dC/db|| is {m(normal['first_last']):.2g} x its last layer's (the chain's bound (1/4)^{depth - 1} = "
        f"{0.25 ** (depth - 1):.2g}); its units saturate instead ({100 * m(normal['saturated']):.0f}% with "
        f"sigma' < 5% of its peak). Fan-in-scaled inits keep the weight factor near 1 "
        f"({m(nielsen['weight_factor']):.2f} Nielsen's, {m(xavier['weight_factor']):.2f} Xavier), so sigma' "
        f"({m(nielsen['act_factor']):.2f}, {m(xavier['act_factor']):.2f}) sets the pace and the gradient vanishes by "
        f"orders of magnitude: first/last {m(nielsen['first_last']):.2g} and {m(xavier['first_last']):.2g}."
    )


def _profile_figure(ctx: Context, nets: list[dict], depth: int) -> None:
    """||dL/dz_j|| / ||dL/dz_D|| per net (seed means), beside the chain's bound (1/4)^(D-j)."""
    profiles = []
    for net in nets:
        dz = _mean_layers(net["seeds"])["dz_norm"]
        profiles.append({"init": net["init"], "width": net["width"], "profile": [v / dz[-1] for v in dz]})
    ctx.figure("real-nets", "cause.real-nets",
               {"depth": depth, "nets": profiles, "chain_bound": [0.25 ** (depth - j) for j in range(1, depth + 1)]})
