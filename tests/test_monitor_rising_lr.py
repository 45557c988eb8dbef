"""The learning-rate side of the detectors on synthetic schedules with a known change point:
`RisingLearningRate` fires on the first sampled step where a rate that at least doubled within its
window already makes steps above the ratio, never on a steady, decaying, cyclic or warming-up rate;
`GradientGrowth` leaves a norm that grows with a rising rate to it, and still fires at a steady rate.

The update ratio of SGD is proportional to the learning rate (||dW|| = lr ||g||), so the schedules
give ratio_t = c * lr_t, sampled as the Monitor samples (`gradvet.monitor.updates.UpdateNorms`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradvet.monitor import Alarms, StepSignals
from gradvet.monitor.alert import UNSTABLE
from gradvet.monitor.detectors import GradientGrowth, RisingLearningRate
from gradvet.monitor.updates import UpdateNorms

STEPS = 300


def schedule_signals(lr, ratio_per_lr: float, log_norm=None) -> list[StepSignals]:
    """Signals of a run with learning rate lr[t]; update ratio ratio_per_lr * lr[t] on the steps the Monitor samples."""
    sampler = UpdateNorms([], every=10)
    out = []
    for t, rate in enumerate(lr):
        sampled = sampler.sampled(t, float(rate))
        norm = 1.0 if log_norm is None else math.exp(log_norm[t])
        out.append(StepSignals(step=t, grad_norm=norm, layer_grad_norms={"a": norm}, backward_passes=1, lr=float(rate),
                               update_ratios={"a": ratio_per_lr * float(rate)} if sampled else None))
    return out


def fired(detector, signals):
    return [s.step for s in signals if detector.update(s)]


def sampled_steps(lr) -> list[int]:
    sampler = UpdateNorms([], every=10)
    return [t for t, rate in enumerate(lr) if sampler.sampled(t, float(rate))]


@pytest.mark.parametrize("name, lr", [
    ("steady", np.full(STEPS, 0.5)),
    ("cosine decay", 0.5 * (1 + np.cos(np.pi * np.arange(STEPS) / STEPS))),
    ("step decay", np.where(np.arange(STEPS) < 150, 0.5, 0.05)),
    ("cyclic +-30%", 0.5 * (1 + 0.3 * np.sin(2 * np.pi * np.arange(STEPS) / 60))),
])
def test_never_fires_without_a_rising_rate_however_large_the_steps(name, lr):
    assert fired(RisingLearningRate(), schedule_signals(lr, ratio_per_lr=2.0)) == [], name  # ratios up to 2


def test_a_linear_warm_up_to_a_sane_rate_is_silent():
    lr = 0.1 * np.minimum(1.0, (np.arange(STEPS) + 1) / 50)
    assert fired(RisingLearningRate(), schedule_signals(lr, ratio_per_lr=0.3)) == []  # ratio 0.03 at the top


@pytest.mark.parametrize("end", [50, 55])
def test_a_warm_up_fires_while_it_rises_and_never_once_it_has_ended(end):
    """Steps above the ratio at the top of the warm-up: the rule by hand fires on the sampled steps where the
    rate is still rising (lr_t > lr_(t-1)), at least doubled over 32 steps and ratio > 0.05; none after the top."""
    lr = 0.1 * np.minimum(1.0, (np.arange(STEPS) + 1) / end)
    c = 0.6  # ratio 0.06 at the top, 0.05 at a rate of 0.083
    expected = [t for t in sampled_steps(lr) if t > 0 and lr[t] > lr[t - 1] and c * lr[t] > 0.05
                and lr[t] / lr[max(0, t - 32)] >= 2]
    steps = fired(RisingLearningRate(), schedule_signals(lr, ratio_per_lr=c))
    assert steps == expected
    assert all(t < end for t in steps)  # a warm-up that has ended is no longer a rising rate
    assert (steps != []) == (end == 55)  # step 50 is sampled: at the top of the first, still rising in the second


def test_a_jump_fires_on_the_step_it_is_taken():
    lr = np.where(np.arange(STEPS) < 140, 0.05, 0.6)  # x12 at step 140 (not a routinely sampled step)
    steps = fired(RisingLearningRate(), schedule_signals(lr, ratio_per_lr=0.5))
    assert steps and steps[0] == 140  # the jump is sampled at once: 0.3 > 0.05 with a rate x12 since step 108
    assert max(steps) <= 140 + 32  # once the jump leaves the window, nothing more


def test_an_exponential_schedule_fires_at_the_first_sample_above_the_ratio():
    lr = 0.01 * 1.06 ** np.arange(STEPS)
    c = 0.5
    # the rule, by hand: a sampled step whose ratio is above 0.05 and whose rate is at least twice that 32 steps back
    above = min(t for t in sampled_steps(lr) if c * lr[t] > 0.05 and lr[t] / lr[max(0, t - 32)] >= 2)
    steps = fired(RisingLearningRate(), schedule_signals(lr, ratio_per_lr=c))
    assert steps[0] == above and lr[above] < 0.2  # at a rate still far below the one that diverges (about 1)


def test_the_alert_names_the_rise_and_the_step_size():
    lr = np.where(np.arange(100) < 40, 0.05, 0.6)
    alarms = Alarms([RisingLearningRate()])
    for s in schedule_signals(lr, ratio_per_lr=0.5):
        alarms.update(s)
    (alert,) = alarms.alerts
    assert (alert.step, alert.kind, alert.detector) == (40, UNSTABLE, "rising_lr")
    assert alert.value == pytest.approx(12.0) and alert.since == 8
    assert "0.05 -> 0.6" in alert.message and "0.3 of its size" in alert.message
    assert "from 0.6 to 0.06" in alert.remedy


def test_growth_leaves_a_norm_rising_with_the_rate_to_the_rate_and_fires_at_a_steady_rate():
    x = np.zeros(STEPS)
    x[150:] = math.log(1.3) * np.arange(STEPS - 150)  # the norm explodes from step 150
    rising = 0.01 * 1.02 ** np.arange(STEPS)
    steady = np.full(STEPS, 0.1)
    assert fired(GradientGrowth(), schedule_signals(rising, 0.0, log_norm=x)) == []
    steps = fired(GradientGrowth(), schedule_signals(steady, 0.0, log_norm=x))
    assert steps and 150 < steps[0] <= 166
    assert fired(GradientGrowth(lr_rise=None), schedule_signals(rising, 0.0, log_norm=x))  # the gate switched off
