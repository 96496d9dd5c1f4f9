"""gradcheck's own arithmetic, checked against hand computation: the relative error, the worst
entry, the mode chosen, the argument checks and the report of a failing check."""

import math

import numpy as np
import pytest

import bpx
from bpx.testing.gradcheck import GradcheckResult, TensorCheck, _check_tensor, _rel_error


def small_net(dtype="float64", seed=3):
    return bpx.Sequential(bpx.Dense(3, 2), bpx.Tanh(), dtype=dtype, seed=seed)


def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(4, 3)), rng.uniform(size=(4, 2))


def test_rel_error_by_hand():
    assert _rel_error(np.array([0.3, 0.4]), np.zeros(2)) == pytest.approx(1.0)
    assert _rel_error(np.zeros(2), np.array([0.0, 0.5])) == pytest.approx(1.0)
    # ‖a − n‖ = 0.1, the larger norm is ‖n‖ = 0.5
    assert _rel_error(np.array([0.3, 0.3]), np.array([0.3, 0.4])) == pytest.approx(0.1 / 0.5)
    assert _rel_error(np.array([3.0, 4.0]), np.array([3.0, 4.5])) == pytest.approx(0.5 / math.hypot(3.0, 4.5))
    assert _rel_error(np.zeros(3), np.zeros(3)) == 0.0


def test_check_tensor_finds_the_worst_entry():
    """E = Σ w²: the numeric gradient is 2w = (2, 4, 6); a wrong analytic (2, 3, 6) is worst at 1."""
    base = {"w": np.array([1.0, 2.0, 3.0])}
    current = {}

    def set_values(values):
        current.update(values)

    def energy():
        return float(np.sum(current["w"] ** 2))

    check = _check_tensor("w", base, np.array([2.0, 3.0, 6.0]), set_values, energy, 1e-4)
    np.testing.assert_allclose(check.numeric, [2.0, 4.0, 6.0], rtol=1e-9)
    assert check.worst_index == (1,)
    assert check.rel_error == pytest.approx(1.0 / math.sqrt(56.0), rel=1e-8)


def test_ok_is_inclusive_and_no_checks_is_zero_error():
    check = TensorCheck("w", (2,), np.array([1.0, 2.0]), np.array([1.0, 2.0]), 1e-3, (0,))
    assert GradcheckResult([check], 1e-3, 1e-5, "coordinates", 0.0).ok
    assert not GradcheckResult([check], 0.999e-3, 1e-5, "coordinates", 0.0).ok
    empty = GradcheckResult([], 1e-6, 1e-5, "directions", 0.0)
    assert empty.max_rel_error == 0.0 and empty.ok


def test_mode_auto_switches_above_max_coordinates():
    x, t = data()
    net = small_net()  # 3·2 + 2 = 8 trainable entries
    assert bpx.gradcheck(net, x, t, "half_squared_error", max_coordinates=8).mode == "coordinates"
    assert bpx.gradcheck(net, x, t, "half_squared_error", max_coordinates=7).mode == "directions"
    big = bpx.Sequential(bpx.Dense(4000, 1), dtype="float64", seed=0)  # 4001 entries: above the default
    xb = np.random.default_rng(0).normal(size=(2, 4000))
    result = bpx.gradcheck(big, xb, np.zeros((2, 1)), "half_squared_error")
    assert result.mode == "directions" and len(result.checks) == 16 and result.ok


def test_directions_default_seed_is_zero():
    x, t = data()
    net = small_net()
    default = bpx.gradcheck(net, x, t, "half_squared_error", mode="directions")
    zero = bpx.gradcheck(net, x, t, "half_squared_error", mode="directions", seed=0)
    one = bpx.gradcheck(net, x, t, "half_squared_error", mode="directions", seed=1)
    assert len(default.checks) == 16
    assert [float(c.numeric) for c in default.checks] == [float(c.numeric) for c in zero.checks]
    assert [float(c.numeric) for c in default.checks] != [float(c.numeric) for c in one.checks]


def test_argument_checks():
    x, t = data()
    net = small_net()
    for kwargs in ({"h": 0.0}, {"rtol": 0.0}, {"mode": "both"}):
        with pytest.raises(bpx.BpxValueError):
            bpx.gradcheck(net, x, t, "half_squared_error", **kwargs)


def test_the_network_is_left_unchanged():
    x, t = data()
    net = small_net()
    before = {k: np.array(v) for k, v in net.state_dict().items()}
    bpx.gradcheck(net, x, t, "half_squared_error")
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_a_wrong_gradient_fails_with_the_right_numbers(monkeypatch):
    """Half the loss gradient: analytic = numeric / 2, so every relative error is exactly 1/2."""
    x, t = data()
    net = small_net()
    honest = bpx.gradcheck(net, x, t, "half_squared_error")
    assert honest.ok and honest.max_rel_error < 1e-8
    from bpx.nn.losses import HalfSquaredError

    original = HalfSquaredError.value_and_grad

    def halved(self, outputs, targets, ctx):
        value, grad = original(self, outputs, targets, ctx)
        return value, grad * 0.5

    monkeypatch.setattr(HalfSquaredError, "value_and_grad", halved)
    result = bpx.gradcheck(net, x, t, "half_squared_error")
    assert not result.ok
    assert result.max_rel_error == pytest.approx(0.5, rel=1e-6)
    for check in result.checks:
        np.testing.assert_allclose(check.analytic, honest.checks[[c.name for c in honest.checks].index(check.name)]
                                   .analytic / 2, rtol=1e-12)
    with pytest.raises(bpx.GradcheckError, match="FAIL"):
        bpx.gradcheck(net, x, t, "half_squared_error", raise_on_failure=True)
