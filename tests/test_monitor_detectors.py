"""Each online detector on synthetic series with a known change point: it fires within a few steps
after the change, and never on stationary noise of several shapes.

The stationary series are made like the healthy runs of benchmarks/early_warning.py: the log gradient
norm of those runs wanders around its rolling median with a robust sigma of 0.2-0.5 (measured: 0.19 to
0.63 over 49 healthy runs), so the noise below has a robust sigma of SIGMA = 0.4 in every shape:
Gaussian, heavy-tailed Student-t (4 degrees of freedom), a slow decay like a healthy loss curve, and
periodic (an epoch effect and a cyclic schedule). Each series is checked over several seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradvet.monitor import Alarms, Alert, StepSignals
from gradvet.monitor.alert import EXPLODING, LOSS_RISING, NONFINITE, SPIKE, STALL, UNSTABLE, VANISHING
from gradvet.monitor.detectors import (
    GradientGrowth,
    GradientSpike,
    LayerCollapse,
    LossCusum,
    LossStall,
    NonFiniteValues,
    Overshoot,
    UpdateRatioCeiling,
    default_detectors,
    growth,
)
from gradvet.monitor.window import MAD_TO_SIGMA, mad, median, theil_sen_slope, trend

STEPS = 600
SIGMA = 0.4  # robust sigma of the log gradient norm around its level, as measured in healthy runs
SEEDS = range(4)
SHAPES = ("gaussian", "student_t", "decaying", "periodic")


def noise(shape: str, seed: int, n: int = STEPS, sigma: float = SIGMA) -> np.ndarray:
    """A stationary (or slowly drifting) log-series of robust sigma `sigma` around 0."""
    rng = np.random.default_rng(seed)
    if shape == "student_t":
        t = rng.standard_t(4, n)
        return sigma * t / (MAD_TO_SIGMA * np.median(np.abs(t)))  # scaled to robust sigma `sigma`
    gauss = sigma * rng.standard_normal(n)
    steps = np.arange(n)
    if shape == "decaying":  # a healthy run: the level falls e-fold every 200 steps, fast at first
        return gauss - 1.5 * (1 - np.exp(-steps / 200))
    if shape == "periodic":  # an epoch effect every 25 steps (+-15%) and a cyclic schedule over 150 (+-25%)
        return gauss + 0.15 * np.sin(2 * np.pi * steps / 25) + 0.25 * np.sin(2 * np.pi * steps / 150)
    return gauss


def gradient_signals(log_norm: np.ndarray, layers: dict[str, np.ndarray] | None = None, loss=None,
                     ratios=None) -> list[StepSignals]:
    out = []
    for t, x in enumerate(log_norm):
        layer_norms = {name: float(math.exp(v[t])) for name, v in (layers or {"layer": log_norm}).items()}
        out.append(StepSignals(step=t, grad_norm=float(math.exp(x)) if math.isfinite(x) else float(x),
                               layer_grad_norms=layer_norms, backward_passes=1,
                               loss=None if loss is None else float(loss[t]),
                               update_ratios=None if ratios is None or ratios[t] is None else dict(ratios[t]),
                               lr=0.1))
    return out


def fired(detector, signals: list[StepSignals]) -> list[int]:
    return [s.step for s in signals if detector.update(s)]


# -- the window statistics against brute force ----------------------------------------------------------

def test_median_mad_and_trend_against_numpy_and_brute_force():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 16, 33):
        x = rng.standard_normal(n)
        assert median(list(x)) == pytest.approx(float(np.median(x)))
        assert mad(list(x), median(list(x))) == pytest.approx(float(np.median(np.abs(x - np.median(x)))))
    x = rng.standard_normal(16)
    steps = list(range(100, 116))
    slopes = [(x[j] - x[i]) / (j - i) for i in range(16) for j in range(i + 1, 16)]
    s = sum(np.sign(x[j] - x[i]) for i in range(16) for j in range(i + 1, 16))
    slope, z = trend(steps, list(x))
    assert slope == pytest.approx(float(np.median(slopes)))
    assert theil_sen_slope(steps, list(x)) == pytest.approx(float(np.median(slopes)))
    assert z == pytest.approx(s / math.sqrt(16 * 15 * 37 / 18))


def test_theil_sen_ignores_an_outlier_that_moves_least_squares():
    x = [0.0] * 15 + [50.0]
    slope, _ = trend(list(range(16)), x)
    assert slope == 0.0
    assert np.polyfit(np.arange(16), x, 1)[0] > 1.0


# -- growth ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_growth_never_fires_on_stationary_noise(shape):
    for seed in SEEDS:
        assert fired(GradientGrowth(), gradient_signals(noise(shape, seed))) == []


@pytest.mark.parametrize("rate", [1.15, 1.3, 2.0])
def test_growth_fires_within_a_window_of_an_explosion(rate):
    change = 300
    for seed in SEEDS:
        x = noise("gaussian", seed)
        x[change:] += math.log(rate) * np.arange(STEPS - change)
        steps = fired(GradientGrowth(), gradient_signals(x))
        assert steps, (rate, seed)
        assert change < steps[0] <= change + 16, (rate, seed, steps[0])


def test_growth_waits_for_the_initial_transient_and_names_the_fastest_layer():
    rise = growth.SETTLE + 8
    x = np.zeros(160)
    x[:rise] = np.log(1.25) * np.arange(rise)  # a norm rising x1.25 per step from step 0: the start, not an alarm
    quiet = {"a": np.zeros(160), "b": x}
    steps = fired(GradientGrowth(), gradient_signals(x, layers=quiet))
    assert steps[0] == growth.SETTLE and max(steps) < rise + growth.WINDOW  # from the end of the settling steps
    finding = GradientGrowth()
    result = [f for s in gradient_signals(x, layers=quiet) for f in finding.update(s)]
    assert result[0].layer == "b" and result[0].kind == EXPLODING
    assert result[0].since == growth.SETTLE - (growth.WINDOW - 1)


# -- spike ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_spike_never_fires_on_stationary_noise(shape):
    for seed in SEEDS:
        assert fired(GradientSpike(), gradient_signals(noise(shape, seed))) == []


def test_spike_rate_on_long_heavy_tailed_noise_is_below_one_in_two_thousand_steps():
    n = 50_000
    rng = np.random.default_rng(123)
    t = rng.standard_t(4, n)
    x = SIGMA * t / (MAD_TO_SIGMA * np.median(np.abs(t)))
    assert len(fired(GradientSpike(), gradient_signals(x))) < n / 2000


def test_spike_fires_on_the_step_of_a_jump_and_not_on_a_small_one():
    for seed in SEEDS:
        x = noise("student_t", seed)
        x[300] += math.log(1000.0)
        assert fired(GradientSpike(), gradient_signals(x)) == [300]
    flat = np.zeros(100)  # MAD 0: a tiny wobble is infinitely many sigmas, but not 10x
    flat[50] = math.log(3.0)
    assert fired(GradientSpike(), gradient_signals(flat)) == []


# -- update ratio ---------------------------------------------------------------------------------------

def ratio_series(seed: int, n: int = STEPS, level: float = 1e-2, every: int = 10):
    """Update ratios on sampled steps: log-normal around `level` (healthy runs: 1e-3 to 0.2)."""
    rng = np.random.default_rng(seed)
    return [{"a": float(level * math.exp(0.5 * rng.standard_normal())),
             "b": float(level * math.exp(0.5 * rng.standard_normal()))} if t < 10 or t % every == 0 else None
            for t in range(n)]


def test_update_ratio_ceiling():
    for seed in SEEDS:
        ratios = ratio_series(seed, level=0.05)
        signals = gradient_signals(noise("gaussian", seed), ratios=ratios)
        assert fired(UpdateRatioCeiling(), signals) == []
        ratios[0] = {"a": 0.01, "b": 3.0}  # step 0: one step rewrote layer b three times over
        ratios[300] = {"a": float("nan"), "b": 0.01}  # a NaN ratio counts as above
        signals = gradient_signals(noise("gaussian", seed), ratios=ratios)
        detector = UpdateRatioCeiling()
        findings = {s.step: detector.update(s) for s in signals}
        assert [t for t, f in findings.items() if f] == [0, 300]
        assert findings[0][0].layer == "b" and findings[0][0].value == 3.0 and "3 times its size" in findings[0][0].message


# -- overshoot ------------------------------------------------------------------------------------------

def test_overshoot_fires_on_large_updates_with_a_flat_loss_and_not_on_a_falling_one():
    n = 200
    falling = 2.3 * np.exp(-np.arange(n) / 10) + 0.05  # halves in 7 steps, as healthy runs at a large rate
    flat = 2.3 + 0.05 * np.sin(np.arange(n))
    for seed in SEEDS:
        big = ratio_series(seed, n, level=0.3)
        small = ratio_series(seed, n, level=0.01)
        x = noise("gaussian", seed, n)
        assert fired(Overshoot(), gradient_signals(x, loss=falling, ratios=big)) == []
        assert fired(Overshoot(), gradient_signals(x, loss=flat, ratios=small)) == []
        assert fired(Overshoot(), gradient_signals(x, loss=flat, ratios=big))[0] == 9  # 10 losses, 3 ratios
        assert fired(Overshoot(), gradient_signals(x, ratios=big)) == []  # silent without a loss


# -- CUSUM on the loss ----------------------------------------------------------------------------------

def loss_series(shape: str, seed: int, n: int = STEPS) -> np.ndarray:
    """A loss with multiplicative noise (robust sigma 0.1 in log), decaying like a healthy run."""
    rng = np.random.default_rng(seed)
    base = 2.3 * np.exp(-np.arange(n) / 150) + 0.1
    if shape == "student_t":
        t = rng.standard_t(4, n)
        return base * np.exp(0.1 * t / (MAD_TO_SIGMA * np.median(np.abs(t))))
    if shape == "periodic":
        return base * np.exp(0.1 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * np.arange(n) / 25))
    if shape == "gaussian":
        return 1.0 * np.exp(0.1 * rng.standard_normal(n))
    return base * np.exp(0.1 * rng.standard_normal(n))


@pytest.mark.parametrize("shape", SHAPES)
def test_cusum_never_fires_on_a_stationary_or_falling_loss(shape):
    for seed in SEEDS:
        loss = loss_series(shape, seed)
        assert fired(LossCusum(), gradient_signals(noise("gaussian", seed), loss=loss)) == []


def test_cusum_fires_within_a_few_steps_of_a_rise():
    change = 300
    for seed in SEEDS:
        loss = loss_series("decaying", seed)
        loss[change:] *= np.exp(0.05 * np.arange(STEPS - change))  # the loss rising 5% per step
        steps = fired(LossCusum(), gradient_signals(noise("gaussian", seed), loss=loss))
        assert steps and change < steps[0] <= change + 20, (seed, steps[:1])  # by then x2-x3
        jump = loss_series("decaying", seed)
        jump[change:] *= 2.0  # a level shift to twice the loss
        steps = fired(LossCusum(), gradient_signals(noise("gaussian", seed), loss=jump))
        assert steps and change <= steps[0] <= change + 8, (seed, steps[:1])


# -- vanishing ------------------------------------------------------------------------------------------

def test_vanishing_fires_when_one_layer_collapses_and_not_when_all_shrink_together():
    n, change = 400, 200
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        total = noise("decaying", seed, n) - 3.0 * np.arange(n) / n  # all shrink ~e^4.5 together
        layers = {"first": total + 0.1 * rng.standard_normal(n), "last": total + 0.1 * rng.standard_normal(n)}
        assert fired(LayerCollapse(), gradient_signals(total, layers=layers)) == []
        dying = dict(layers)
        dying["first"] = layers["first"].copy()
        dying["first"][change:] -= math.log(1e5)  # its gradient collapses 100,000-fold
        detector = LayerCollapse()
        findings = [(s.step, f) for s in gradient_signals(total, layers=dying) for f in detector.update(s)]
        assert findings and change < findings[0][0] <= change + 40
        assert {f.layer for _, f in findings} == {"first"} and findings[0][1].kind == VANISHING


def test_vanishing_fires_on_a_dead_layer():
    n = 100
    x = np.zeros(n)
    layers = {"dead": np.where(np.arange(n) < 40, 0.0, -np.inf), "alive": np.zeros(n)}
    steps = fired(LayerCollapse(), gradient_signals(x, layers=layers))
    assert steps and steps[0] == 59  # the first block after the layer died ends at step 59


# -- stall ----------------------------------------------------------------------------------------------

def test_stall_fires_on_a_flat_loss_after_its_minimum_steps_and_never_on_a_learning_run():
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        flat = 2.3 * np.exp(0.005 * rng.standard_normal(STEPS))
        steps = fired(LossStall(), gradient_signals(noise("gaussian", seed), loss=flat))
        assert steps and steps[0] == 199
        assert fired(LossStall(), gradient_signals(noise("gaussian", seed), loss=loss_series("decaying", seed))) == []
        # learnt, then levelled off: not a stall
        levelled = np.concatenate([np.linspace(2.3, 0.2, 100), np.full(STEPS - 100, 0.2)])
        assert fired(LossStall(), gradient_signals(noise("gaussian", seed), loss=levelled)) == []


# -- non-finite -----------------------------------------------------------------------------------------

def test_nonfinite_fires_on_the_step_of_a_nan_or_inf():
    x = noise("gaussian", 0, 50)
    x[20] = np.nan
    layers = {"a": x.copy(), "b": x.copy()}
    layers["a"][20] = 0.0
    signals = gradient_signals(x, layers=layers)
    detector = NonFiniteValues()
    findings = {s.step: detector.update(s) for s in signals}
    assert [t for t, f in findings.items() if f] == [20]
    assert findings[20][0].layer == "b" and findings[20][0].kind == NONFINITE
    loss = np.ones(50)
    loss[30] = np.inf
    assert fired(NonFiniteValues(), gradient_signals(noise("gaussian", 0, 50), loss=loss)) == [30]


# -- all of them together, as a Monitor runs them -------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_default_detectors_raise_no_alert_on_stationary_runs(shape):
    for seed in SEEDS:
        loss = loss_series("decaying" if shape == "gaussian" else shape, seed)  # a run that learns
        signals = gradient_signals(noise(shape, seed), loss=loss, ratios=ratio_series(seed))
        alarms = Alarms()
        for s in signals:
            alarms.update(s)
        assert alarms.alerts == []


def test_one_alert_per_episode_and_a_new_one_after_a_quiet_spell():
    x = noise("gaussian", 0, 400)
    x[100:] += 8.0  # a sustained level shift: one spike, not one alert per step
    alarms = Alarms([GradientSpike()])
    for s in gradient_signals(x):
        alarms.update(s)
    assert [a.step for a in alarms.alerts] == [100]
    y = np.zeros(400)
    y[[100, 110, 200]] = math.log(1e5)  # 110 is within the quiet spell of 100's episode; 200 is not
    alarms = Alarms([GradientSpike()])
    for s in gradient_signals(y):
        alarms.update(s)
    assert [a.step for a in alarms.alerts] == [100, 200]
    assert all(a.kind == SPIKE for a in alarms.alerts)


def test_remedy_quotes_the_90th_percentile_of_healthy_norms():
    rng = np.random.default_rng(5)
    norms = np.exp(0.3 * rng.standard_normal(300))
    x = np.log(norms)
    x[299] = math.log(1e4)
    alarms = Alarms([GradientSpike()])
    for s in gradient_signals(x):
        alarms.update(s)
    (alert,) = alarms.alerts
    healthy = norms[:299]  # no finding before the spike: every earlier step was healthy
    expected = float(np.percentile(healthy, 90))
    assert f"clip the gradient norm at {expected:.3g}" in alert.remedy.lower()
    assert "299 healthy steps" in alert.remedy and "0.1" in alert.remedy  # lr 0.1 -> 0.01
    assert alert.remedy.endswith(".") and alert.message.endswith(".")


def test_detectors_keep_bounded_state_on_long_runs():
    n = 20_000
    x = noise("decaying", 1, n)
    signals = gradient_signals(x, loss=np.exp(x), ratios=ratio_series(1, n))
    alarms = Alarms()
    for s in signals:
        alarms.update(s)
    for detector in alarms.detectors:
        for value in vars(detector).values():
            if isinstance(value, (list, dict)) or hasattr(value, "maxlen"):
                assert len(value) <= 64, (detector.name, value)
    assert len(alarms._healthy) <= 1000


def test_kinds_named_by_detectors_are_the_documented_ones():
    from gradvet.monitor.alert import KINDS

    assert {EXPLODING, VANISHING, SPIKE, NONFINITE, LOSS_RISING, STALL, UNSTABLE} == set(KINDS)
    assert {d.name for d in default_detectors()} == {"nonfinite", "update_ratio", "growth", "spike", "overshoot",
                                                      "rising_lr", "loss_cusum", "vanishing", "stall"}
    assert Alert(step=1, kind=SPIKE, layer=None, message="m.", remedy="r.", detector="spike").step == 1
