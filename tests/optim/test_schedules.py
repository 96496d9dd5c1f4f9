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


def test_get_schedule_takes_instances_and_refuses_names_classes_and_other_objects():
    from bpx.optim.schedules import get_schedule

    cosine = bpx.CosineLR(3)
    assert get_schedule(cosine) is cosine and get_schedule(None) is None
    with pytest.raises(bpx.BpxValueError, match="pass a schedule object"):
        get_schedule("cosine")
    with pytest.raises(bpx.BpxTypeError, match=r"pass an instance, e\.g\. CosineLR\(\.\.\.\), not the class"):
        get_schedule(bpx.CosineLR)
    for junk in (5, 0.1, [bpx.CosineLR(3)], int):
        with pytest.raises(bpx.BpxTypeError, match="lr_schedule must be a bpx Schedule"):
            get_schedule(junk)
