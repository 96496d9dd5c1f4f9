"""The flat parameter store on JAX, the immutable backend (every update rebinds the buffer), against
hand-computed SGD steps: eager and compiled (jax.jit, retraced for a shorter last chunk) training,
frozen parameters, and the NaN guard's restore. Values read through the parameters afterwards must
be the new buffer's, never a stale view or a value cached inside a trace."""

import numpy as np
import pytest

import bpx

pytest.importorskip("jax")

W, B = np.array([[0.5], [-1.0]]), np.array([0.25])
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0], [2.0, -1.0]])
T = np.array([[1.0], [0.0], [-1.0], [2.0]])


def hand_steps(steps, lr):
    """Full-batch SGD on E = mean over samples of (x·w + b − t)² (one output)."""
    w, b = W.copy(), B.copy()
    for _ in range(steps):
        r = X @ w + b - T
        w, b = w - lr * 2 * X.T @ r / len(X), b - lr * 2 * r.mean(axis=0)
    return w, b


def net():
    return bpx.Sequential(bpx.Dense(2, 1, weight=W, bias=B), backend="jax", dtype="float64", seed=0)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "jit"])
def test_jax_sgd_steps_are_the_hand_computed_steps(compile):
    model = net()
    model.predict(X)  # views of the first buffer are cached
    model.fit(X, T, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=3, batch_size=4, shuffle=False, verbose=0,
              compile=compile)
    w, b = hand_steps(3, 0.1)
    np.testing.assert_allclose(bpx.to_host(model.layers[0].weight.value), w, rtol=1e-12)
    np.testing.assert_allclose(bpx.to_host(model.layers[0].bias.value), b, rtol=1e-12)
    np.testing.assert_allclose(model.predict(X), X @ w + b, rtol=1e-12)
    assert model.step_count == 3


def test_the_nan_guard_restores_jax_parameters_that_the_views_then_show():
    model = net()
    with pytest.raises(bpx.NonFiniteError, match="restored to the last check"):
        model.fit(X * 1e150, T, loss="mse", optimizer=bpx.SGD(lr=1e10), epochs=3, batch_size=4, shuffle=False,
                  verbose=0)
    np.testing.assert_array_equal(bpx.to_host(model.layers[0].weight.value), W)
    np.testing.assert_array_equal(bpx.to_host(model.layers[0].bias.value), B)
    np.testing.assert_allclose(model.predict(X), X @ W + B, rtol=1e-12)


def test_a_frozen_jax_parameter_stays_and_the_others_take_the_hand_computed_step():
    model = net()
    model.layers[0].weight.trainable = False
    model.fit(X, T, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=1, batch_size=4, shuffle=False, verbose=0)
    r = X @ W + B - T
    np.testing.assert_array_equal(bpx.to_host(model.layers[0].weight.value), W)
    np.testing.assert_allclose(bpx.to_host(model.layers[0].bias.value), B - 0.1 * 2 * r.mean(axis=0), rtol=1e-12)


def test_an_eager_step_after_a_compiled_fit_keeps_its_gradient():
    model = net()
    model.fit(X, T, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=1, batch_size=4, shuffle=False, verbose=0,
              compile=True)
    w, b = hand_steps(1, 0.1)
    model.train_step(X, T, "mse", bpx.SGD(lr=0.1))
    r = X @ w + b - T
    np.testing.assert_allclose(bpx.to_host(model.layers[0].bias.grad), 2 * r.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bpx.to_host(model.layers[0].weight.grad), 2 * X.T @ r / len(X), rtol=1e-12)


def test_compiled_chunks_of_two_lengths_take_the_hand_computed_per_sample_steps():
    """4 samples in batches of 1, chunks of 3 (check_every): chunk lengths 3 and 1, two traces."""
    model = net()
    model.fit(X, T, loss="mse", optimizer=bpx.SGD(lr=0.05), epochs=2, batch_size=1, shuffle=False, verbose=0,
              compile=True, check_every=3)
    w, b = W.copy(), B.copy()
    for _ in range(2):
        for x, t in zip(X, T, strict=True):
            r = x @ w + b - t
            w, b = w - 0.05 * 2 * np.outer(x, r), b - 0.05 * 2 * r
    np.testing.assert_allclose(bpx.to_host(model.layers[0].weight.value), w, rtol=1e-12)
    np.testing.assert_allclose(bpx.to_host(model.layers[0].bias.value), b, rtol=1e-12)
    np.testing.assert_allclose(model.predict(X), X @ w + b, rtol=1e-12)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "jit"])
def test_a_network_with_every_parameter_frozen_trains_nothing(compile):
    model = net()
    for p in model.parameters():
        p.trainable = False
    history = model.fit(X, T, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=2, batch_size=2, shuffle=False,
                        verbose=0, compile=compile)
    np.testing.assert_allclose(history["loss"], [np.mean((X @ W + B - T) ** 2)] * 2, rtol=1e-12)
    np.testing.assert_array_equal(bpx.to_host(model.layers[0].weight.value), W)


def test_a_layer_used_twice_gets_the_sum_of_both_uses_on_jax():
    """y = w·(w·x + b) + b with one scalar w, b; E = ½ (y − t)²: ∂E/∂w = r·(w·x + b + w·x), ∂E/∂b = r·(w + 1)."""
    w, b, x, t = 0.5, 0.25, 2.0, 1.0
    dense = bpx.Dense(1, 1, weight=[[w]], bias=[b])
    model = bpx.Sequential(dense, bpx.Identity(), dense, backend="jax", dtype="float64", seed=0)
    model.train_step([[x]], [[t]], "hse", bpx.SGD(lr=1e-300))
    r = w * (w * x + b) + b - t
    np.testing.assert_allclose(bpx.to_host(dense.weight.grad), [[r * (w * x + b + w * x)]], rtol=1e-14)
    np.testing.assert_allclose(bpx.to_host(dense.bias.grad), [r * (w + 1)], rtol=1e-14)
