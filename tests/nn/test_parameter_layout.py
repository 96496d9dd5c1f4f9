"""Freezing or unfreezing a parameter re-lays out the flat buffer (trainable parameters first):
values survive, and a parameter's value read after the change is a view of the buffer that the
next update writes (NumPy: in place)."""

import numpy as np

import bpx


def test_a_value_read_after_freezing_is_a_view_of_the_buffer_the_next_update_writes():
    net = bpx.Sequential(bpx.Dense(2, 2), bpx.Tanh(), bpx.Dense(2, 1), dtype="float64", seed=0)
    first, last = net.layers[0], net.layers[2]
    before = {name: p.value.copy() for name, p in net.named_parameters().items()}
    last.bias.value  # noqa: B018 - a cached view of the current layout
    first.weight.trainable = False  # the layout changes: weight moves behind the trainable parameters
    bias = last.bias.value
    np.testing.assert_array_equal(bias, before["layers.2.bias"])
    net.store.refresh_layout()
    assert np.shares_memory(bias, net.store.values)
    grads = np.ones(net.store.trainable_size)
    bpx.SGD(lr=0.5).update(net.store, net.backend.asarray(grads))
    np.testing.assert_array_equal(bias, before["layers.2.bias"] - 0.5)  # the held view sees the update
    np.testing.assert_array_equal(first.weight.value, before["layers.0.weight"])  # frozen: unchanged
    assert net.store.trainable_size == net.n_parameters - 4


def test_values_read_after_load_state_dict_are_the_loaded_ones():
    x = np.random.default_rng(0).normal(size=(3, 2))
    a, b = (bpx.Sequential(bpx.Dense(2, 3), bpx.Tanh(), bpx.Dense(3, 1), dtype="float64", seed=s) for s in (1, 2))
    a.predict(x)  # the views of the old buffer are cached
    a.load_state_dict(b.state_dict())
    np.testing.assert_array_equal(a.layers[0].weight.value, b.layers[0].weight.value)
    np.testing.assert_array_equal(a.layers[2].weight.value_t, b.layers[2].weight.value.T)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_gradients_after_freezing_land_in_the_new_layout():
    """E = ½ (x·w + b − t)² averaged over samples: ∂E/∂b = mean(x·w + b − t), by hand."""
    w, b = np.array([[1.0], [-2.0]]), np.array([0.5])
    x, t = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), np.array([[0.0], [1.0], [3.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), dtype="float64", seed=0)
    layer, sgd = net.layers[0], bpx.SGD(lr=0.1)
    net.train_step(x, t, "hse", sgd)  # caches the gradient buffer's views
    w1, b1 = layer.weight.value.copy(), layer.bias.value.copy()
    np.testing.assert_allclose(b1, b - 0.1 * np.mean(x @ w + b - t), rtol=1e-14)
    layer.weight.trainable = False
    net.train_step(x, t, "hse", sgd)
    grad_b = np.mean(x @ w1 + b1 - t)
    np.testing.assert_allclose(layer.bias.grad, [grad_b], rtol=1e-14)
    np.testing.assert_allclose(layer.bias.value, b1 - 0.1 * grad_b, rtol=1e-14)
    np.testing.assert_array_equal(layer.weight.value, w1)
    assert layer.weight.grad is None


def test_grad_shows_only_the_gradient_of_the_last_kept_step():
    x, t = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0], [1.0]])
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    layer = net.layers[0]

    def manual_backward():  # a pass outside a training step: it keeps no gradient for p.grad
        from bpx.nn.parameter import Gradients

        ctx = net.context(training=True)
        passed = net.forward_pass(net.prepare_inputs(x), ctx)
        net.backward(passed, net.backend.asarray(np.ones((2, 1))), Gradients(net.store), ctx)

    manual_backward()
    assert layer.weight.grad is None and layer.bias.grad is None  # a new network
    net.train_step(x, t, "hse", "sgd")
    assert layer.bias.grad is not None
    net.load_state_dict(net.state_dict())
    manual_backward()
    assert layer.weight.grad is None and layer.bias.grad is None  # new values: the old gradient is gone
    net.train_step(x, t, "hse", "sgd")
    layer.weight.trainable = False
    net.store.refresh_layout()
    manual_backward()
    assert layer.bias.grad is None  # a new layout: likewise
