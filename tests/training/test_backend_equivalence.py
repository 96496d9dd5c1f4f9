"""Every backend is first-class: from the same seed, two epochs of fit give, on every backend and
device, the network that an independent hand-written NumPy training loop computes from the same
initial weights and the documented batch order; JAX's compiled step equals the eager one;
PyTorch inputs are never modified and no autograd graph is built; a short MNIST fit runs on every
backend/device (GPU rows skip with the reason)."""

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


def hand_written_training(initial, x, y, dtype, epochs=2, batch=64, lr=0.05, momentum=0.9, seed=1):
    """The same MLP trained by a plain NumPy loop: ReLU, softmax cross-entropy averaged over the
    batch, PyTorch's SGD momentum (v ← μv + g; w ← w − lr·v), batches in the documented order
    (each epoch a permutation drawn from numpy.random.default_rng(seed))."""
    w = [initial[k].astype(dtype) for k in ("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias")]
    v = [np.zeros_like(p) for p in w]
    x, rng = x.astype(dtype), np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for lo in range(0, len(x), batch):
            idx = order[lo:lo + batch]
            xb, yb = x[idx], y[idx]
            h = np.maximum(xb @ w[0] + w[1], 0)
            z = h @ w[2] + w[3]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), yb] -= 1
            dz = p / len(idx)
            dh = (dz @ w[2].T) * (h > 0)
            grads = [xb.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]
            for i, g in enumerate(grads):
                v[i] = momentum * v[i] + g
                w[i] = w[i] - lr * v[i]
    return dict(zip(("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"), w, strict=True))


@pytest.mark.parametrize("cfg", backend_params())
def test_two_epochs_of_fit_match_a_hand_written_numpy_loop(cfg, mini):
    x, y, xt, yt = mini
    start = bpx.Sequential(bpx.Dense(784, 32, init="he_uniform"), bpx.ReLU(), bpx.Dense(32, 10), seed=0,
                           dtype="float64").state_dict()  # the seed's initial weights, drawn on the host
    reference = hand_written_training(start, x, y, np.dtype(cfg.dtype))
    net, hist = train_two_epochs(cfg, mini)
    # float32 rounding differences between two correct implementations grow over 188 steps
    factor = 1.0 if cfg.dtype == "float64" else 16.0
    for name, value in net.state_dict().items():
        assert_close(value, reference[name], dtype=cfg.dtype, factor=factor, err_msg=name)
    z = np.maximum(xt @ reference["layers.0.weight"] + reference["layers.0.bias"], 0) @ reference["layers.2.weight"]
    expected_accuracy = np.count_nonzero((z + reference["layers.2.bias"]).argmax(1) == yt) / len(yt)
    assert abs(hist["val_accuracy"][-1] - expected_accuracy) <= 0.002
    assert hist["val_accuracy"][-1] > 0.85


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
