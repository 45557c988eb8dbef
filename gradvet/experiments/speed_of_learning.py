"""`speed-of-learning`: Nielsen's measurement of how fast each hidden layer learns
(Neural Networks and Deep Learning, ch. 5; fig/generate_gradient.py in the book's code).

Setup, as in the book: sigmoid nets with 2, 3 and 4 hidden layers of 30 units,
weights N(0, 1/n_in) and biases N(0, 1) (init "nielsen"), sigmoid output units
with the cross-entropy cost (loss "sigmoid_cross_entropy"), the first 1,000
training examples. The speed of learning of a hidden layer l is ||dC/db^l||,
the norm of its bias gradient, with C the mean cost over those 1,000 examples
(one forward and one backward pass over all of them).

At initialisation the speeds are computed in float64 from the very weights the
training run starts from (`gradvet.models.build.build` seeds torch with the
spec's seed). During training: full-batch gradient descent on the 1,000
examples, eta = 0.1, L2 lambda = 5.0 (Nielsen's term lambda/(2n) sum w^2 with
n = 1,000 is weight_decay = lambda/n = 0.005), 500 epochs (--quick: 100); the
engine's probe records the speeds at ~50 epochs of each run and the runs are
kept in the store. One difference from the book: the engine's weight decay
also shrinks the biases (Nielsen's acts on weights only); the speeds
themselves are loss gradients, without the decay term, as in the book.
"""

from __future__ import annotations

import time

import torch

from gradvet.experiments.base import Context, experiment, fmt_mean_sd, mean_sd
from gradvet.spec import RunSpec

DEPTHS = (2, 3, 4)
WIDTH = 30
N_TRAIN = 1000
ETA = 0.1
LAMBDA = 5.0
EPOCHS = 500
QUICK_EPOCHS = 100

# NNDL ch. 5, 784-input MNIST, at initialisation: ||dC/db|| of hidden layers 1, 2, ...
BOOK_INIT_SPEED = {
    2: [0.07, 0.31],
    3: [0.012, 0.060, 0.283],
    4: [0.003, 0.017, 0.070, 0.285],
}
BOOK_SOURCE = "M. Nielsen, Neural Networks and Deep Learning, ch. 5 (784-input MNIST)"


def network_spec(depth: int, data: str = "digits", data_options: tuple = (), epochs: int = EPOCHS,
                 seed: int = 0) -> RunSpec:
    """Nielsen's network with `depth` hidden layers, trained full-batch on the first 1,000 examples."""
    return RunSpec(data=data, data_options=(("n_train", N_TRAIN), *data_options), activation="sigmoid",
                   depth=depth, width=WIDTH, init="nielsen", loss="sigmoid_cross_entropy", optimizer="sgd",
                   lr=ETA, batch_size=N_TRAIN, steps=epochs, weight_decay=LAMBDA / N_TRAIN, seed=seed)


def network_label(n_features: int, depth: int, n_outputs: int) -> str:
    """'64-30-30-10' for two hidden layers on digits."""
    return "-".join(str(n) for n in (n_features, *([WIDTH] * depth), n_outputs))


def init_speeds(spec: RunSpec, dataset) -> list[float]:
    """||dC/db|| of each hidden layer at initialisation, C the mean cost over every training
    example of `dataset`; float64, the weights the run of `spec` starts from."""
    from gradvet.models.build import build
    from gradvet.train.optim import make_loss

    model = build(spec, dataset.n_features, dataset.n_classes, dataset.sequence).double()
    loss = make_loss(spec, dataset.task)(model(dataset.x_train.double()), dataset.y_train)
    loss.backward()
    return [float(torch.linalg.vector_norm(block.linear.bias.grad)) for block in model.hidden]


def speed_curves(records: list[tuple], depth: int) -> tuple[list[int], list[list[float]]]:
    """(epochs, speeds per hidden layer) from a run's probe records (step k = after k updates)."""
    from gradvet.probe import Trace

    trace = Trace(records)
    steps, _ = trace.series("hidden.0.linear", "bias_grad_norm")
    return steps, [trace.series(f"hidden.{i}.linear", "bias_grad_norm")[1] for i in range(depth)]


def _checkpoints(steps: list[int], epochs: int) -> list[int]:
    """Recorded epochs nearest to 0, 10%, 25%, 50% of the run and its last recorded one."""
    wanted = [0, epochs // 10, epochs // 4, epochs // 2, steps[-1]]
    return sorted({min(steps, key=lambda s: abs(s - w)) for w in wanted})


@experiment("speed-of-learning", "Nielsen's speed of learning: each hidden layer learns slower than the one after it")
def speed_of_learning(ctx: Context) -> None:
    from gradvet.data import load

    data, options = ctx.data_spec()
    epochs = QUICK_EPOCHS if ctx.quick else EPOCHS
    dataset = load(data, **dict(network_spec(DEPTHS[0], data, options).data_options))
    is_mnist = dataset.name.lower() == "mnist" or data.lower() == "mnist"
    n = dataset.n_train
    ctx.say(f"{dataset.describe()}; the first {n} training examples, {ctx.seeds} seed(s), {epochs} full-batch epochs")

    labels: dict[int, str] = {}
    init: dict[str, list[list[float]]] = {}  # label -> per seed -> per layer (float64)
    curves: dict[str, list[tuple[list[int], list[list[float]]]]] = {}
    finals: dict[str, list[dict]] = {}
    check = 0.0  # float32 step-0 probe record vs the float64 computation, largest relative difference
    for depth in DEPTHS:
        label = labels[depth] = network_label(dataset.n_features, depth, dataset.n_classes)
        init[label], curves[label], finals[label] = [], [], []
        for seed in range(ctx.seeds):
            spec = network_spec(depth, data, options, epochs, seed)
            speeds = init_speeds(spec, dataset)
            start, reused = time.perf_counter(), ctx.reused
            run = ctx.run(spec, dataset=dataset)
            how = "reused from the store" if ctx.reused > reused else f"trained in {time.perf_counter() - start:.1f} s"
            ctx.say(f"  {label} seed {seed}: {how}")
            steps, series = speed_curves(run.layer_records, depth)
            if steps and steps[0] == 0:
                check = max(check, *(abs(s[0] - v) / v for s, v in zip(series, speeds)))
            init[label].append(speeds)
            curves[label].append((steps, series))
            finals[label].append(run.metrics)

    training = {label: _mean_curves(curves[label]) for label in curves}
    _init_table(ctx, labels, init, is_mnist, n)
    _training_table(ctx, labels, curves, finals, epochs)
    _init_figure(ctx, labels, init, is_mnist)
    _training_figure(ctx, labels, training, ctx.seeds > 1, epochs)

    ctx.result.update({
        "setup": {"depths": list(DEPTHS), "width": WIDTH, "n_train": n, "epochs": epochs, "eta": ETA,
                  "lambda": LAMBDA, "weight_decay": LAMBDA / N_TRAIN, "init": "nielsen",
                  "loss": "sigmoid_cross_entropy", "data": dataset.name},
        "networks": {label: depth for depth, label in labels.items()},
        "init_speed": {label: [mean_sd(col)[0] for col in zip(*init[label])] for label in init},
        "init_speed_sd": {label: [mean_sd(col)[1] for col in zip(*init[label])] for label in init},
        "init_speed_by_seed": init,
        "init_check_max_rel_diff": check,
        "training": training,
        "final": {label: {key: mean_sd(m.get(key) for m in finals[label])[0]
                          for key in ("final_loss", "test_accuracy")} for label in finals},
    })
    if is_mnist:
        ctx.result["book_init_speed"] = {labels[d]: BOOK_INIT_SPEED[d] for d in DEPTHS}
    ctx.say(f"The training runs' first probe record (float32) matches the float64 speeds at initialisation "
            f"to a relative {check:.1g}.")


def _init_table(ctx: Context, labels: dict[int, str], init: dict, is_mnist: bool, n: int) -> None:
    top = max(DEPTHS)
    rows = []
    for depth, label in labels.items():
        cols = list(zip(*init[label]))
        cells = [fmt_mean_sd(col) for col in cols] + [""] * (top - depth)
        ratio = [seed[-1] / seed[0] for seed in init[label]]
        rows.append([label, *cells, fmt_mean_sd(ratio, 2)])
        if is_mnist:
            book = BOOK_INIT_SPEED[depth]
            rows.append([f"{label} (Nielsen)", *book, *[""] * (top - depth), f"{book[-1] / book[0]:.2g}"])
    note = (f"||dC/db|| of each hidden layer, C the mean cross-entropy over the first {n} training examples "
            f"(float64, one backward pass); sigmoid nets, W ~ N(0,1/n_in), b ~ N(0,1), sigmoid outputs.")
    if is_mnist:
        note += f" Nielsen rows: {BOOK_SOURCE}."
    else:
        note += " The book's MNIST figures are printed beside these with --data mnist --mnist-dir DIR."
    if ctx.seeds > 1:
        note += f" Mean +- sd over {ctx.seeds} seeds."
    ctx.table("Speed of learning at initialisation (Nielsen, NNDL ch. 5)",
              ["network", *[f"hidden {i + 1}" for i in range(top)], "last/first"], rows, note)


def _mean_curves(per_seed: list[tuple[list[int], list[list[float]]]]) -> dict:
    """Mean, min and max over seeds of each layer's speed at the epochs every seed recorded."""
    common = sorted(set.intersection(*(set(steps) for steps, _ in per_seed)))
    layers = len(per_seed[0][1])
    lookup = [[dict(zip(steps, series[i])) for i in range(layers)] for steps, series in per_seed]
    out = {"epoch": common, "mean": [], "min": [], "max": []}
    for i in range(layers):
        values = [[seed[i][s] for seed in lookup] for s in common]
        out["mean"].append([mean_sd(v)[0] for v in values])
        out["min"].append([min(v) for v in values])
        out["max"].append([max(v) for v in values])
    return out


def _training_table(ctx: Context, labels: dict[int, str], curves: dict, finals: dict, epochs: int) -> None:
    top = max(DEPTHS)
    rows = []
    for depth, label in labels.items():
        per_seed = curves[label]
        common = sorted(set.intersection(*(set(steps) for steps, _ in per_seed)))
        if not common:
            continue
        for epoch in _checkpoints(common, epochs):
            cols = [[dict(zip(steps, series[i]))[epoch] for steps, series in per_seed] for i in range(depth)]
            ratio = [col_last / col_first for col_first, col_last in zip(cols[0], cols[-1])]
            rows.append([label, epoch, *[fmt_mean_sd(c) for c in cols], *[""] * (top - depth),
                         fmt_mean_sd(ratio, 2)])
    ctx.table(f"Speed of learning during training: full-batch gradient descent, eta {ETA:g}, L2 lambda {LAMBDA:g}",
              ["network", "epoch", *[f"hidden {i + 1}" for i in range(top)], "last/first"], rows,
              f"||dC/db|| recorded by the engine's probe at ~50 of the {epochs} epochs (float32); "
              "the decay term is not part of the speed; figure: speed-of-learning-training.")
    ctx.table("After training", ["network", "training cost (last epoch)", "test accuracy"],
              [[label, fmt_mean_sd([m.get("final_loss") for m in finals[label]]),
                fmt_mean_sd([m.get("test_accuracy") for m in finals[label]])] for label in labels.values()])


def _init_figure(ctx: Context, labels: dict[int, str], init: dict, is_mnist: bool) -> None:
    """The speed of each hidden layer at initialisation (seed means), with the book's beside it on MNIST."""
    ctx.figure("init", "speed-of-learning.init",
               {"layers": max(DEPTHS),
                "networks": [{"label": label, "speed": [mean_sd(col)[0] for col in zip(*init[label])],
                              "book": list(BOOK_INIT_SPEED[depth]) if is_mnist else None}
                             for depth, label in labels.items()]})


def _training_figure(ctx: Context, labels: dict[int, str], training: dict, band: bool, epochs: int) -> None:
    """Each hidden layer's speed during training, one panel per network (with the seeds' range when
    there are several)."""
    ctx.figure("training", "speed-of-learning.training",
               {"eta": ETA, "lambda": LAMBDA, "epochs": epochs, "band": band,
                "networks": [{"label": label, "layers": depth, **training[label]} for depth, label in labels.items()]})


__all__ = ["BOOK_INIT_SPEED", "DEPTHS", "init_speeds", "network_label", "network_spec", "speed_curves",
           "speed_of_learning"]

