"""Normalisation layers with one parameter frozen: the other one's gradient still matches PyTorch
autograd; and ``momentum=0`` leaves the running statistics untouched whatever the batch holds."""

import numpy as np
import pytest

import bpx
from bpx.nn.parameter import Gradients
from bpx.testing import assert_close

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("frozen", ["weight", "bias"])
@pytest.mark.parametrize("kind", ["batch_norm", "layer_norm"])
def test_the_trainable_parameter_of_a_half_frozen_norm_gets_torchs_gradient(kind, frozen):
    make, module = {"batch_norm": (bpx.BatchNorm, torch.nn.BatchNorm1d),
                    "layer_norm": (bpx.LayerNorm, torch.nn.LayerNorm)}[kind]
    layer = make(4, **{f"train_{frozen}": False})
    net = bpx.Sequential(layer, input_shape=(4,), dtype="float64", seed=0)
    rng = np.random.default_rng(3)
    x, g = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    grads = Gradients(net.store)
    net.backward(passed, net.backend.asarray(g, copy=True), grads, ctx)
    flat, slices = bpx.to_host(grads.flat()), net.store.slices()
    trained = "bias" if frozen == "weight" else "weight"
    p = getattr(layer, trained)
    got = flat[slices[p][0]:slices[p][1]]
    ref = module(4, dtype=torch.float64)
    ref.train()
    ref(torch.tensor(x)).backward(torch.tensor(g))
    assert_close(got, getattr(ref, trained).grad.numpy(), dtype="float64")
    assert got.shape == (4,) and np.abs(got).max() > 0.1


def test_momentum_zero_never_touches_the_running_statistics():
    layer = bpx.BatchNorm(2, momentum=0.0)
    net = bpx.Sequential(layer, input_shape=(2,), dtype="float32", seed=0)
    x = np.array([[3e19, 0.0], [-3e19, 1.0]])  # the first feature's variance overflows float32
    with np.errstate(over="ignore", invalid="ignore"):
        net.forward_pass(net.prepare_inputs(x), net.context(training=True))
    np.testing.assert_array_equal(bpx.to_host(layer.running_mean.value), [0.0, 0.0])
    np.testing.assert_array_equal(bpx.to_host(layer.running_var.value), [1.0, 1.0])
