"""Learning-rate schedules against their closed forms (epochs counted from 0)."""

import math

import pytest

import bpx


def test_constant_schedule_returns_the_base_rate_for_every_epoch():
    assert [bpx.ConstantLR()(e, 0.3) for e in range(4)] == [0.3, 0.3, 0.3, 0.3]


def test_step_schedule_default_gamma_is_one_tenth():
    schedule = bpx.StepLR(3)
    assert schedule.gamma == 0.1
    assert [schedule(e, 2.0) for e in (0, 2, 3, 6)] == pytest.approx([2.0, 2.0, 0.2, 0.02])


def test_step_schedule_accepts_gamma_one_and_refuses_more():
    assert bpx.StepLR(1, gamma=1.0)(5, 0.5) == 0.5
    with pytest.raises(bpx.BpxValueError, match="gamma"):
        bpx.StepLR(1, gamma=1.5)
    with pytest.raises(bpx.BpxValueError, match="gamma"):
        bpx.StepLR(1, gamma=0.0)


def test_cosine_schedule_decays_to_zero_by_default_and_stays_there():
    schedule = bpx.CosineLR(10)
    assert schedule.min_lr == 0.0
    expected = [0.5 * (1 + math.cos(math.pi * e / 10)) for e in range(11)] + [0.0, 0.0]
    assert [schedule(e, 1.0) for e in range(13)] == pytest.approx(expected, abs=1e-15)
