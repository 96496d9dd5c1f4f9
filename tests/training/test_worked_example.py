"""The 2-2-2 worked example against independent float64 references, on every backend (rtol 1e-9)."""

import numpy as np
import pytest
from references import E0, E1, E10000, GRADS, OUT_10000, OUT_HIDDEN, OUT_OUTPUT, WEIGHTS_AFTER

import bpx
from bpx.architectures import WORKED_INPUTS, WORKED_LR, WORKED_TARGETS, worked_example
from bpx.testing import assert_close, backend_params

RTOL = 1e-9  # the references are given to 12 significant digits
CASES = backend_params(dtypes=("float64",))


def textbook_order(w):
    """(in, out) matrix on the host -> [w for each target neuron, for each input] (w1, w2 feed h1)."""
    w = bpx.to_host(w)
    return [w[i, j] for j in range(w.shape[1]) for i in range(w.shape[0])]


def weights(net):
    return textbook_order(net.layers[0].weight.value) + textbook_order(net.layers[2].weight.value)


@pytest.mark.parametrize("cfg", CASES)
def test_forward_values(cfg):
    net = worked_example(cfg.name, cfg.device)
    x = net.prepare_inputs(WORKED_INPUTS)
    ctx = net.context(training=False)
    hidden, _ = net.layers[1].forward(net.layers[0].forward(x, ctx)[0], ctx)
    assert_close(hidden[0, :], OUT_HIDDEN, rtol=RTOL, atol=0)
    assert_close(net.forward(WORKED_INPUTS)[0, :], OUT_OUTPUT, rtol=RTOL, atol=0)
    assert_close(net.compute_loss(WORKED_INPUTS, WORKED_TARGETS, "half_squared_error"), E0, rtol=RTOL, atol=0)


@pytest.mark.parametrize("cfg", CASES)
def test_one_step_gradients_and_update(cfg):
    net = worked_example(cfg.name, cfg.device)
    loss = net.train_step(WORKED_INPUTS, WORKED_TARGETS, bpx.HalfSquaredError(), bpx.SGD(lr=WORKED_LR))
    assert loss.shape == ()
    assert_close(loss, E0, rtol=RTOL, atol=0)
    grads = textbook_order(net.layers[0].weight.grad) + textbook_order(net.layers[2].weight.grad)
    assert_close(grads, GRADS, rtol=RTOL, atol=0)
    assert_close(weights(net), WEIGHTS_AFTER, rtol=RTOL, atol=0)
    # biases are frozen: no gradient, unchanged values
    assert net.layers[0].bias.grad is None
    assert_close(net.layers[0].bias.value, [0.35, 0.35], rtol=0, atol=0)
    assert_close(net.compute_loss(WORKED_INPUTS, WORKED_TARGETS), E1, rtol=RTOL, atol=0)


def test_often_quoted_value_is_not_simultaneous_descent():
    """0.291027924 comes from updating hidden weights through already-updated output weights."""
    net = worked_example()
    net.train_step(WORKED_INPUTS, WORKED_TARGETS, "half_squared_error", bpx.SGD(lr=WORKED_LR))
    e1 = float(bpx.to_host(net.compute_loss(WORKED_INPUTS, WORKED_TARGETS)))
    assert abs(e1 - 0.291027924) > 1e-7
    assert abs(e1 - E1) < 1e-12


@pytest.mark.parametrize("cfg", CASES)
def test_ten_thousand_steps(cfg):
    """10,000 steps on the one sample: a fit over 10,000 copies of it in batches of one, unshuffled
    (on JAX compiled: one lax.scan instead of 10,000 eager dispatches)."""
    net = worked_example(cfg.name, cfg.device)
    loss, opt = bpx.HalfSquaredError(), bpx.SGD(lr=WORKED_LR)
    copies = np.repeat(np.asarray(WORKED_INPUTS), 10_000, axis=0), np.repeat(np.asarray(WORKED_TARGETS), 10_000, axis=0)
    net.fit(*copies, loss=loss, optimizer=opt, batch_size=1, shuffle=False, verbose=0, compile=cfg.name == "jax")
    assert opt.iterations == net.step_count == 10_000
    assert_close(net.compute_loss(WORKED_INPUTS, WORKED_TARGETS), E10000, rtol=RTOL, atol=0)
    assert_close(net.forward(WORKED_INPUTS)[0, :], OUT_10000, rtol=RTOL, atol=0)
