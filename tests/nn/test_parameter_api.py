"""The parameter API that custom layers use, against hand values and PyTorch's conventions: a new
Parameter trains by default, a backward pass's accumulated contributions, the loss scale's growth
interval, and reading values on the meta device."""

import numpy as np
import pytest

import bpx
from bpx.nn.parameter import Gradients, LossScale


def test_a_new_parameter_is_trainable_unless_frozen():
    assert bpx.Parameter("w", (2,), init=lambda rng, shape: np.zeros(shape)).trainable is True
    assert bpx.Parameter("w", (2,), trainable=False).trainable is False


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_contribution_is_what_backward_accumulated_for_a_parameter(backend):
    """E = ½ (x·w + b − t)² averaged over samples: ∂E/∂w = xᵀ r / n and ∂E/∂b = mean(r), r = x·w + b − t."""
    pytest.importorskip(backend)
    w, b = np.array([[1.0], [-2.0]]), np.array([0.5])
    x, t = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), np.array([[0.0], [1.0], [3.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), backend=backend, dtype="float64", seed=0)
    layer = net.layers[0]
    grads = Gradients(net.store)
    assert grads.contribution(layer.weight) is None and grads.contribution(layer.bias) is None
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    outputs = bpx.to_host(passed.outputs)
    r = x @ w + b - t
    np.testing.assert_allclose(outputs - t, r, rtol=1e-14)
    net.backward(passed, net.backend.asarray(r / len(x)), grads, ctx)
    np.testing.assert_allclose(bpx.to_host(grads.contribution(layer.weight)).reshape(2, 1), x.T @ r / len(x),
                               rtol=1e-14)
    np.testing.assert_allclose(bpx.to_host(grads.contribution(layer.bias)).reshape(1), r.mean(axis=0), rtol=1e-14)


def test_the_loss_scale_grows_after_pytorchs_2000_finite_steps():
    torch = pytest.importorskip("torch")
    assert LossScale.growth_interval == torch.amp.GradScaler("cpu").get_growth_interval() == 2000


def test_reading_parameter_values_on_the_meta_device_says_what_to_do():
    pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(2, 2), backend="torch", device="meta", seed=0)
    with pytest.raises(bpx.StateError, match="reading parameter values needs values, but the network is on "
                                             "PyTorch's 'meta' device"):
        net.store.host_values()


def test_a_parameter_may_have_as_many_elements_as_an_array_can_hold_and_no_more():
    import sys

    assert bpx.Parameter("w", (sys.maxsize,)).size == sys.maxsize  # checked now, allocated only when built
    with pytest.raises(bpx.ShapeError, match=r"Dense weight: shape \(2, 4611686018427387904\) has more elements"):
        bpx.Parameter("weight", (2, 2**62), owner="Dense")


def test_the_value_of_a_parameter_outside_a_network_says_what_to_do():
    layer = bpx.Dense(2, 3)
    with pytest.raises(bpx.StateError, match=r"parameter 'weight' has no values yet: its layer is not part of a"):
        layer.weight.value  # noqa: B018
    with pytest.raises(bpx.StateError, match=r"parameter 'bias' has no values yet"):
        layer.bias.value_t  # noqa: B018


def test_assigning_a_value_checks_it_and_every_later_read_sees_it():
    net = bpx.Sequential(bpx.Dense(2, 1, bias=0.0), dtype="float32", seed=0)
    with pytest.raises(bpx.BpxValueError, match=r"layers.0.weight: the value 1e\+300 overflows to inf in float32"):
        net.layers[0].weight.value = np.array([[1e300], [0.0]])
    net.layers[0].weight.value = [[2.0], [3.0]]
    assert net.predict([[1.0, 1.0]]).tolist() == [[5.0]]


def test_a_device_value_is_checked_like_host_data():
    torch = pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(2, 1), backend="torch", dtype="float64", seed=0)
    with pytest.raises(bpx.BpxValueError, match=r"layers\.0\.bias"):
        net.layers[0].bias.value = torch.tensor([float("inf")], dtype=torch.float64)
    with pytest.raises(bpx.BpxValueError, match=r"layers.0.bias: the value 1e\+300 overflows to inf in float32"):
        bpx.Sequential(bpx.Dense(2, 1), backend="torch", dtype="float32").layers[0].bias.value = \
            torch.tensor([1e300], dtype=torch.float64)


@pytest.mark.parametrize("backend, dtype", [("numpy", "float16"), ("jax", "float32")])
def test_an_assigned_value_reaches_the_passes_on_mixed_and_immutable_backends(backend, dtype):
    pytest.importorskip(backend)
    net = bpx.Sequential(bpx.Dense(2, 1, bias=0.0), backend=backend, dtype=dtype, seed=0)
    net.predict([[1.0, 1.0]])  # caches the views (and, in float16, the low-precision copy)
    net.layers[0].weight.value = [[2.0], [3.0]]
    np.testing.assert_array_equal(bpx.to_host(net.layers[0].weight.value).astype(np.float64), [[2.0], [3.0]])
    assert bpx.to_host(net.predict([[1.0, 1.0]])).astype(np.float64).tolist() == [[5.0]]


def test_trainable_values_follow_a_freeze_at_once():
    net = bpx.Sequential(bpx.Dense(2, 3), bpx.Tanh(), bpx.Dense(3, 1), dtype="float64", seed=0)
    bias = net.layers[2].bias.value.copy()
    net.layers[0].weight.trainable = False
    values = net.store.trainable_values()
    assert values.shape == (net.n_parameters - 6,)
    np.testing.assert_array_equal(values[-1:], bias)  # trainable first, in network order: layers.2.bias last


def test_flat_gradients_are_zero_where_a_backward_pass_contributed_nothing():
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    weight, bias = net.layers[0].weight, net.layers[0].bias
    first = Gradients(net.store)
    first.add(weight, np.full((2, 1), 3.0))
    first.add(bias, np.array([4.0]))
    np.testing.assert_array_equal(bpx.to_host(first.flat()), [3.0, 3.0, 4.0])
    second = Gradients(net.store)  # the same buffer is reused: what the first pass wrote must not leak
    second.add(bias, np.array([5.0]))
    np.testing.assert_array_equal(bpx.to_host(second.flat()), [0.0, 0.0, 5.0])


def test_fit_refuses_to_start_from_non_finite_parameters():
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    net.store.values[1] = np.nan  # behind the checked setters' back
    with pytest.raises(bpx.NonFiniteError, match=r"fit: before training: parameter 'layers.0.weight' holds NaN"):
        net.fit(np.ones((2, 2)), np.ones((2, 1)), loss="mse", optimizer="sgd", verbose=0)


def test_a_0d_array_value_fills_the_shape_like_a_number():
    layer = bpx.Dense(2, 3, bias=np.array(0.5), weight=np.float64(2.0))
    net = bpx.Sequential(layer, dtype="float64", seed=0)
    np.testing.assert_array_equal(layer.bias.value, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(layer.weight.value, np.full((2, 3), 2.0))
    assert net.predict([[1.0, 1.0]]).tolist() == [[4.5, 4.5, 4.5]]


def test_an_initialiser_of_a_parameter_without_fans_sees_fan_in_and_out_of_1():
    p = bpx.Parameter("w", (2,), init=lambda rng, shape, fan_in, fan_out: np.full(shape, 10.0 * fan_in + fan_out))
    np.testing.assert_array_equal(p.initial_value(np.random.default_rng(0)), [11.0, 11.0])


def test_a_meta_device_value_of_the_wrong_shape_is_refused():
    torch = pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(2, 3), backend="torch", device="meta", seed=0)
    net.layers[0].weight.value = torch.empty((2, 3), device="meta")
    with pytest.raises(bpx.ShapeError, match=r"weight: expected shape \(2, 3\), got \(3, 2\)"):
        net.layers[0].weight.value = torch.empty((3, 2), device="meta")


def test_float16_passes_use_the_updated_master_weights():
    """One SGD step on E = ½ (x·w + b − t)², by hand (every number exact in float16; the scaled
    gradient 2¹⁵·r·x stays below float16's largest value, so the step is taken)."""
    w, b, x, t = np.array([[0.5], [0.25]]), np.array([0.0]), np.array([[1.0, 1.5]]), np.array([[0.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), backend="numpy", dtype="float16", seed=0)
    assert net.predict(x).tolist() == [[0.875]]
    net.train_step(x, t, "hse", bpx.SGD(lr=0.25))
    r = x @ w + b - t  # 0.875
    assert net.layers[0].bias.grad.tolist() == [0.875]  # the gradient, not the step the optimizer took
    w1, b1 = w - 0.25 * x.T @ r, b - 0.25 * r[0]
    assert net.predict(x).astype(np.float64).tolist() == (x @ w1 + b1).tolist() == [[-0.0546875]]


def test_the_loss_scale_halves_and_restarts_its_count_after_an_overflow_and_doubles_after_the_interval():
    """float16, scale 2¹⁵: a gradient 2¹⁵·r·x = 2¹⁶ overflows (the step is skipped); then, with an
    interval of 2, two finite steps double the scale and restart the count."""
    w, b, t = np.array([[0.5], [0.25]]), np.array([0.0]), np.array([[0.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), backend="numpy", dtype="float16", seed=0)
    scale = net.loss_scale

    def state():
        return float(bpx.to_host(scale.scale.value)), float(bpx.to_host(scale.good_steps.value))

    with np.errstate(over="ignore", invalid="ignore"):
        net.train_step(np.array([[1.0, 2.0]]), t, "hse", bpx.SGD(lr=1e-300))
    assert state() == (16384.0, 0.0)
    scale.growth_interval = 2
    net.train_step(np.array([[0.25, 0.25]]), t, "hse", bpx.SGD(lr=1e-300))
    assert state() == (16384.0, 1.0)
    net.train_step(np.array([[0.25, 0.25]]), t, "hse", bpx.SGD(lr=1e-300))
    assert state() == (32768.0, 0.0)
