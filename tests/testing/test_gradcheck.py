"""Central-difference gradient checks of every layer and loss, and a 5-layer network, on every
backend (float64: max relative error below 1e-6)."""

import math

import numpy as np
import pytest

import bpx
from bpx.testing import backend_params

CASES = backend_params(dtypes=("float64",))
RTOL = 1e-6
ACTIVATIONS = [bpx.Sigmoid, bpx.Tanh, bpx.ReLU, lambda: bpx.LeakyReLU(0.1), bpx.Softmax, bpx.Identity]


def data(n=5, d=3, k=4, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labels = rng.integers(0, k, size=n)
    return x, labels, rng.uniform(0.05, 0.95, size=(n, k))


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=["sigmoid", "tanh", "relu", "leaky_relu", "softmax",
                                                        "identity"])
def test_each_activation(cfg, activation):
    x, _, t = data()
    net = bpx.Sequential(bpx.Dense(3, 4), activation(), bpx.Dense(4, 4), activation(),
                         backend=cfg.name, device=cfg.device, dtype="float64", seed=3)
    result = bpx.gradcheck(net, x, t, "half_squared_error")
    assert result.ok, result.report()


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("loss", ["half_squared_error", "mean_squared_error", "softmax_cross_entropy",
                                  "softmax_cross_entropy-onehot", "binary_cross_entropy"])
def test_each_loss(cfg, loss):
    x, labels, t = data()
    if loss == "softmax_cross_entropy":
        t = labels
    elif loss.endswith("onehot"):
        loss, t = "softmax_cross_entropy", np.eye(4)[labels]
    net = bpx.Sequential(bpx.Dense(3, 6), bpx.Tanh(), bpx.Dense(6, 4),
                         backend=cfg.name, device=cfg.device, dtype="float64", seed=4)
    result = bpx.gradcheck(net, x, t, loss)
    assert result.ok, result.report()


@pytest.mark.parametrize("cfg", CASES)
def test_five_layer_network(cfg):
    x, labels, _ = data(n=8, d=6, k=3)
    net = bpx.Sequential(
        bpx.Dense(6, 8), bpx.Tanh(), bpx.Dense(8, 8), bpx.Sigmoid(), bpx.Dense(8, 7), bpx.LeakyReLU(0.2),
        bpx.Dense(7, 5), bpx.Tanh(), bpx.Dense(5, 3),
        backend=cfg.name, device=cfg.device, dtype="float64", seed=5)
    result = bpx.gradcheck(net, x, labels, "softmax_cross_entropy")
    assert result.ok and result.max_rel_error < RTOL, result.report()
    assert len(result.checks) == 10  # 5 weights + 5 biases


def test_direction_mode_and_float32_network():
    x, labels, _ = data(n=16, d=20, k=10)
    net = bpx.Sequential(bpx.Dense(20, 64), bpx.ReLU(), bpx.Dense(64, 10), dtype="float32", seed=0)
    result = bpx.gradcheck(net, x, labels, "softmax_cross_entropy", max_coordinates=100)
    assert result.mode == "directions" and result.ok, result.report()
    assert net.layers[0].weight.value.dtype == np.float32  # checked on a float64 copy; net untouched


def test_report_shows_both_gradients_on_failure():
    class WrongSigmoid(bpx.Sigmoid):
        def slope(self, saved, xp):
            return saved  # missing (1 - y)

    x, _, t = data()
    net = bpx.Sequential(bpx.Dense(3, 4), WrongSigmoid(), bpx.Dense(4, 4), dtype="float64", seed=0)
    result = bpx.gradcheck(net, x, t, "mse")
    assert not result.ok
    report = result.report()
    assert "FAIL" in report and "analytic" in report and "numeric" in report
    with pytest.raises(bpx.GradcheckError, match=r"layers.0.weight"):
        bpx.gradcheck(net, x, t, "mse", raise_on_failure=True)


def test_frozen_parameters_are_not_checked():
    x, _, t = data()
    net = bpx.Sequential(bpx.Dense(3, 4, train_bias=False), bpx.Tanh(), bpx.Dense(4, 4, train_weight=False),
                         dtype="float64", seed=0)
    names = [c.name for c in bpx.gradcheck(net, x, t, "mse").checks]
    assert names == ["layers.0.weight", "layers.2.bias"]


def _slightly_wrong_network(error):
    """A Tanh whose slope is off by the relative ``error``: the weight gradients before it are too."""

    class SlightlyWrongTanh(bpx.Tanh):
        def slope(self, saved, xp):
            return (1.0 + error) * (1.0 - saved * saved)

    return bpx.Sequential(bpx.Dense(3, 4), SlightlyWrongTanh(), bpx.Dense(4, 2), dtype="float64", seed=2)


@pytest.mark.parametrize("mode", ["coordinates", "directions"])
def test_default_tolerance_catches_a_relative_error_of_1e_5(mode):
    """The default rtol is 1e-6: a gradient wrong by 1e-5 (relative) fails, in both modes; only an
    rtol above the error lets it pass. (A tolerance loosened 1000x would miss it.)"""
    x, _, t = data(k=2)
    result = bpx.gradcheck(_slightly_wrong_network(1e-5), x, t, "half_squared_error", mode=mode)
    assert result.rtol == 1e-6 and not result.ok, result.report()
    assert 1e-6 < result.max_rel_error < 1e-3
    assert bpx.gradcheck(_slightly_wrong_network(1e-5), x, t, "half_squared_error", mode=mode, rtol=1e-3).ok
    assert bpx.gradcheck(_slightly_wrong_network(0.0), x, t, "half_squared_error", mode=mode).ok


def test_directions_are_distinct_random_unit_directions():
    """Each direction is drawn afresh: the directional derivatives differ, and none exceeds the
    gradient's norm (unit directions; the gradient of a linear layer under half squared error in
    closed form: ∂E/∂W = xᵀ(xW + b − t)/n, ∂E/∂b = Σ_rows (xW + b − t)/n)."""
    x, _, t = data(n=5, d=3, k=2)
    w, b = np.array([[0.5, -1.0], [0.25, 0.75], [-0.5, 0.1]]), np.array([0.2, -0.3])
    net = bpx.Sequential(bpx.Dense(3, 2, weight=w, bias=b), dtype="float64", seed=0)
    r = (x @ w + b - t) / len(x)
    norm = math.sqrt(float(np.sum((x.T @ r) ** 2) + np.sum(r.sum(axis=0) ** 2)))
    result = bpx.gradcheck(net, x, t, "half_squared_error", mode="directions", directions=8, seed=3)
    slopes = [float(c.analytic) for c in result.checks]
    assert result.ok and len(slopes) == 8
    assert all(abs(s) <= norm * (1 + 1e-12) for s in slopes)
    assert len({round(s, 12) for s in slopes}) == 8
    other = bpx.gradcheck(net, x, t, "half_squared_error", mode="directions", directions=8, seed=4)
    assert [float(c.analytic) for c in other.checks] != slopes
