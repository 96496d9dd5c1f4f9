"""Every backend is first-class: from the same seed, training gives the same network everywhere;
JAX's compiled step equals the eager one; PyTorch inputs are never modified and no autograd
graph is built; a short MNIST fit runs on every backend/device (GPU rows skip with the reason)."""

import numpy as np
import pytest

import bpx
from bpx.datasets import mnist_mini
from bpx.testing import assert_close, backend_params


@pytest.fixture(scope="module")
def mini():
    (x, y), (xt, yt) = mnist_mini()
    return x, y, xt[:500], yt[:500]


def train_two_epochs(cfg, data, **kwargs):
    x, y, xt, yt = data
    net = bpx.Sequential(bpx.Dense(784, 32, init="he_uniform"), bpx.ReLU(), bpx.Dense(32, 10),
                         backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=0)
    hist = net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.05, momentum=0.9), epochs=2,
                   batch_size=64, validation_data=(xt, yt), seed=1, verbose=0, **kwargs)
    return net, hist


@pytest.fixture(scope="module")
def numpy_reference(mini):
    return {dtype: train_two_epochs(bpx.testing.BackendConfig("numpy", None, dtype), mini)
            for dtype in ("float64", "float32")}


@pytest.mark.parametrize("cfg", backend_params())
def test_two_epochs_of_fit_agree_with_numpy(cfg, mini, numpy_reference):
    net, hist = train_two_epochs(cfg, mini)
    ref_net, ref_hist = numpy_reference[cfg.dtype]
    for name, value in net.state_dict().items():
        assert_close(value, ref_net.state_dict()[name], dtype=cfg.dtype, err_msg=name)
    assert abs(hist["val_accuracy"][-1] - ref_hist["val_accuracy"][-1]) <= 0.002
    assert abs(hist["accuracy"][-1] - ref_hist["accuracy"][-1]) <= 0.002
    assert hist["val_accuracy"][-1] > 0.85


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_compiled_step_equals_eager(mini, dtype):
    pytest.importorskip("jax")
    cfg = bpx.testing.BackendConfig("jax", None, dtype)
    eager, eager_hist = train_two_epochs(cfg, mini)
    compiled, compiled_hist = train_two_epochs(cfg, mini, compile=True, lr_schedule=None)
    for name, value in compiled.state_dict().items():
        assert_close(value, eager.state_dict()[name], dtype=dtype, err_msg=name)
    assert_close(compiled_hist["loss"], eager_hist["loss"], dtype=dtype)


def test_jax_compiled_adam_with_schedule_tracks_eager(mini):
    """lr and the step count are traced: a schedule and Adam's bias correction stay exact."""
    pytest.importorskip("jax")
    x, y, *_ = mini
    nets = []
    for compile_step in (False, True):
        net = bpx.Sequential(bpx.Dense(784, 16), bpx.Tanh(), bpx.Dense(16, 10), backend="jax", dtype="float64",
                             seed=0)
        net.fit(x[:1000], y[:1000], loss="ce", optimizer=bpx.Adam(lr=0.01), epochs=3, batch_size=100, seed=0,
                verbose=0, lr_schedule=bpx.StepLR(1, 0.5), compile=compile_step)
        nets.append(net)
    for name, value in nets[1].state_dict().items():
        assert_close(value, nets[0].state_dict()[name], err_msg=name)


def test_compile_needs_jax(mini):
    x, y, *_ = mini
    with pytest.raises(ValueError, match="compile=True needs the jax backend"):
        bpx.Sequential(bpx.Dense(784, 10)).fit(x[:10], y[:10], loss="ce", optimizer="sgd", compile=True, verbose=0)


def test_torch_inputs_untouched_and_no_autograd_graph():
    torch = pytest.importorskip("torch")
    x = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(8, 3, dtype=torch.float64)
    x0, t0 = x.detach().clone(), t.clone()
    net = bpx.Sequential(bpx.Dense(4, 5), bpx.Tanh(), bpx.Dense(5, 3), backend="torch", dtype="float64", seed=0)
    loss = net.train_step(x, t, "mse", bpx.SGD(lr=0.1, momentum=0.9))
    assert loss.grad_fn is None and not loss.requires_grad
    assert all(not p.value.requires_grad and p.value.grad_fn is None for p in net.parameters())
    assert torch.equal(x.detach(), x0) and torch.equal(t, t0)
    net.fit(x, t, loss="mse", optimizer="sgd", epochs=1, batch_size=4, verbose=0)
    assert torch.equal(x.detach(), x0) and torch.equal(t, t0)


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float32",)))
def test_short_mnist_fit_on_every_device(cfg, mini):
    """The same short run everywhere, GPUs included (pytest -m gpu runs only those rows)."""
    x, y, xt, yt = mini
    net = bpx.Sequential(bpx.Dense(784, 64, init="he_uniform"), bpx.ReLU(), bpx.Dense(64, 10),
                         backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=0)
    hist = net.fit(x, y, loss="ce", optimizer=bpx.SGD(lr=0.05, momentum=0.9), epochs=1, batch_size=128,
                   validation_data=(xt, yt), seed=0, verbose=0)
    assert hist["val_accuracy"][-1] > 0.8
    for p in net.parameters():
        net.backend.check_array(p.value, p.name)
    out = net.predict(xt)
    net.backend.check_array(out, "predictions")
    assert np.argmax(bpx.to_host(out), axis=1).shape == (500,)
