"""Activations against closed forms and PyTorch autograd: values, the element-wise slopes that
explain mode shows, input gradients at the kinks (x = 0 exactly), Softmax over the last axis of
any shape and at extreme inputs, and the documented defaults."""

import math

import numpy as np
import pytest

import bpx
from bpx.nn.parameter import Gradients
from bpx.testing import assert_close, backend_params

torch = pytest.importorskip("torch")
CASES = backend_params(dtypes=("float64",))
X = np.array([[-3.0, -0.5, 0.0, 0.25, 2.0], [1.5, 0.0, -1e-3, 4.0, -2.0]])


def closed_forms(a=0.2):
    """name -> (layer, f(x), f'(x)) by hand; the kinks take PyTorch's convention (f'(0) = the left slope)."""
    sig = 1.0 / (1.0 + np.exp(-X))
    return {
        "sigmoid": (bpx.Sigmoid(), sig, sig * (1.0 - sig)),
        "tanh": (bpx.Tanh(), np.tanh(X), 1.0 - np.tanh(X) ** 2),
        "relu": (bpx.ReLU(), np.where(X > 0, X, 0.0), np.where(X > 0, 1.0, 0.0)),
        "leaky_relu": (bpx.LeakyReLU(a), np.where(X > 0, X, a * X), np.where(X > 0, 1.0, a)),
        "identity": (bpx.Identity(), X, np.ones_like(X)),
    }


def passes(layer, x, grad_y, cfg):
    """(outputs, ∂E/∂x) of a network made of ``layer`` alone, for ∂E/∂outputs ``grad_y``."""
    net = bpx.Sequential(layer, input_shape=x.shape[1:], backend=cfg.name, device=cfg.device, dtype="float64",
                         seed=0)
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    grad_x = net.backward(passed, net.backend.asarray(np.array(grad_y)), Gradients(net.store), ctx,
                          need_input_grad=True)  # a copy: backward may overwrite grad_y
    return bpx.to_host(passed.outputs), bpx.to_host(grad_x)


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
def test_apply_slope_and_backward_match_the_closed_forms(cfg, name):
    layer, value, slope = closed_forms()[name]
    xp = cfg.backend().xp
    xd = cfg.backend().asarray(X)
    assert_close(layer.apply(xd, xp), value, rtol=1e-15, atol=1e-300)
    ctx = bpx.Sequential(bpx.Identity(), input_shape=(5,), backend=cfg.name, device=cfg.device,
                         dtype="float64").context(training=False)
    y, saved = layer.forward(xd, ctx)
    assert_close(y, value, rtol=1e-15, atol=1e-300)
    assert_close(layer.slope(saved, xp), slope, rtol=1e-12, atol=1e-300)
    grad_y = np.random.default_rng(1).normal(size=X.shape)
    _, grad_x = passes(closed_forms()[name][0], X, grad_y, cfg)
    assert_close(grad_x, grad_y * slope, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_input_gradients_match_torch_autograd_including_zero(cfg, name):
    reference = {"relu": torch.relu, "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.2),
                 "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]
    grad_y = np.random.default_rng(2).normal(size=X.shape)
    xt = torch.tensor(X, requires_grad=True)
    yt = reference(xt)
    yt.backward(torch.tensor(grad_y))
    y, grad_x = passes(closed_forms()[name][0], X, grad_y, cfg)
    assert_close(y, yt.detach().numpy(), rtol=1e-14, atol=1e-300)
    assert_close(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("cfg", CASES)
def test_softmax_normalises_the_last_axis_of_any_shape_and_matches_torch(cfg):
    x = np.random.default_rng(3).normal(scale=2.0, size=(2, 3, 4))
    grad_y = np.random.default_rng(4).normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.softmax(xt, dim=-1)
    yt.backward(torch.tensor(grad_y))
    y, grad_x = passes(bpx.Softmax(), x, grad_y, cfg)
    assert_close(y, yt.detach().numpy(), rtol=1e-14, atol=1e-300)
    assert_close(y.sum(axis=-1), np.ones((2, 3)), rtol=1e-15, atol=1e-15)
    assert_close(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert_close(bpx.Softmax().apply(cfg.backend().asarray(x), cfg.backend().xp), yt.detach().numpy(), rtol=1e-14,
                 atol=1e-300)


@pytest.mark.parametrize("cfg", CASES)
def test_softmax_is_stable_at_extreme_inputs(cfg):
    """Without subtracting the row maximum, e^1000 overflows (inf/inf = NaN) and e^-1000 underflows
    (0/0); softmax is shift-invariant, so each row equals the softmax of small numbers, by hand."""
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1000.0], [-1000.0, 0.0, 1000.0]])
    small = [np.array([0.0, 1.0, 2.0]), np.array([0.0, -1.0, 0.0])]
    expected = np.array([*(np.exp(s) / np.exp(s).sum() for s in small), [0.0, 0.0, 1.0]])
    y, grad_x = passes(bpx.Softmax(), x, np.ones_like(x), cfg)
    assert_close(y, expected, rtol=1e-14, atol=1e-300)
    assert np.all(np.isfinite(grad_x))


def test_leaky_relu_default_slope_is_pytorchs_0_01():
    layer = bpx.LeakyReLU()
    assert layer.negative_slope == 0.01
    net = bpx.Sequential(layer, input_shape=(2,), dtype="float64")
    assert bpx.to_host(net.forward([[-2.0, 3.0]])).tolist() == [[-0.02, 3.0]]
    assert math.isclose(torch.nn.LeakyReLU().negative_slope, 0.01)
