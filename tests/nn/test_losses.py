"""Loss values and gradients against PyTorch's own implementations (an independent source),
stability at extreme logits, and target validation."""

import warnings

import numpy as np
import pytest

import bpx
from bpx.nn.losses import MeanOneHot
from bpx.testing import assert_close, backend_params

torch = pytest.importorskip("torch")
F = torch.nn.functional
CASES = backend_params()


def reference(loss, z, t):
    """(value, gradient) of ``loss`` computed by torch autograd in float64."""
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    if loss == "half_squared_error":
        value = 0.5 * ((zt - torch.tensor(t)) ** 2).sum() / z.shape[0]
    elif loss == "mean_squared_error":
        value = F.mse_loss(zt, torch.tensor(t))
    elif loss == "softmax_cross_entropy":
        value = F.cross_entropy(zt, torch.tensor(t))
    else:
        value = F.binary_cross_entropy_with_logits(zt, torch.tensor(t))
    value.backward()
    return value.item(), zt.grad.numpy()


def make(loss, rng, n=6, k=5):
    z = rng.normal(scale=3.0, size=(n, k))
    if loss == "softmax_cross_entropy":
        return z, rng.integers(0, k, size=n)
    if loss == "binary_cross_entropy":
        return z, rng.uniform(size=(n, k))
    return z, rng.normal(size=(n, k))


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("name", ["half_squared_error", "mean_squared_error", "softmax_cross_entropy",
                                  "binary_cross_entropy"])
def test_value_and_grad_match_torch(cfg, name):
    backend = cfg.backend()
    z, t = make(name, np.random.default_rng(0))
    loss = bpx.get_loss(name)
    value, grad = loss.value_and_grad(backend.asarray(z), loss.prepare_targets(t, backend, (z.shape[1],)))
    ref_value, ref_grad = reference(name, z, t)
    assert value.shape == ()
    assert_close(value, ref_value, dtype=cfg.dtype)
    assert_close(grad, ref_grad, dtype=cfg.dtype)


@pytest.mark.parametrize("cfg", CASES)
def test_one_hot_and_soft_targets_match_labels(cfg):
    backend = cfg.backend()
    z, labels = make("softmax_cross_entropy", np.random.default_rng(1))
    loss = bpx.SoftmaxCrossEntropy()
    zd = backend.asarray(z)
    a = loss.value_and_grad(zd, loss.prepare_targets(labels, backend, (5,)))
    b = loss.value_and_grad(zd, loss.prepare_targets(np.eye(5)[labels], backend, (5,)))
    assert_close(a[0], b[0])
    assert_close(a[1], b[1])


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("batches", [1, 3])
def test_fits_mean_one_hot_targets_match_torch_per_batch(cfg, batches):
    """fit converts the labels of several batches at once (batch_targets) and steps through the
    11-operation MeanOneHot path: each batch's value and gradient are F.cross_entropy's."""
    backend = cfg.backend()
    rng = np.random.default_rng(4)
    z, labels = rng.normal(scale=3.0, size=(batches * 4, 5)), rng.integers(0, 5, size=batches * 4)
    loss = bpx.SoftmaxCrossEntropy()
    per_batch = loss.batch_targets(loss.prepare_targets(labels, backend, (5,)), batches, backend, (5,))
    assert len(per_batch) == batches
    for i, targets in enumerate(per_batch):
        assert isinstance(targets, MeanOneHot) and targets.shape == (4, 5)
        rows = slice(4 * i, 4 * i + 4)
        value, grad = loss.value_and_grad(backend.asarray(z[rows]), targets)
        ref_value, ref_grad = reference("softmax_cross_entropy", z[rows], labels[rows])
        assert_close(value, ref_value, dtype=cfg.dtype)
        assert_close(grad, ref_grad, dtype=cfg.dtype)


@pytest.mark.parametrize("cfg", CASES)
def test_other_losses_split_their_targets_by_batch(cfg):
    backend = cfg.backend()
    t = np.arange(12.0).reshape(6, 2)
    parts = bpx.MeanSquaredError().batch_targets(backend.asarray(t), 3, backend, (2,))
    assert [bpx.to_host(p).tolist() for p in parts] == [t[0:2].tolist(), t[2:4].tolist(), t[4:6].tolist()]


@pytest.mark.parametrize("cfg", CASES)
def test_extreme_logits_are_stable(cfg):
    backend = cfg.backend()
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 500.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce = bpx.SoftmaxCrossEntropy()
        value, grad = ce.value_and_grad(backend.asarray(z), ce.prepare_targets([1, 1], backend, (3,)))
        assert_close(value, 1000.0, dtype=cfg.dtype)  # sample 0: 2000/2; sample 1: 0
        assert np.all(np.isfinite(bpx.to_host(grad)))
        [targets] = ce.batch_targets(ce.prepare_targets([1, 1], backend, (3,)), 1, backend, (3,))
        value, grad = ce.value_and_grad(backend.asarray(z), targets)  # fit's path
        assert_close(value, 1000.0, dtype=cfg.dtype)
        assert np.all(np.isfinite(bpx.to_host(grad)))
        bce = bpx.BinaryCrossEntropy()
        value, grad = bce.value_and_grad(backend.asarray(z), bce.prepare_targets(np.ones((2, 3)), backend, (3,)))
        assert np.isfinite(float(bpx.to_host(value)))
        assert np.all(np.isfinite(bpx.to_host(grad)))
        net = bpx.Sequential(bpx.Dense(3, 3, weight=np.eye(3)), bpx.Sigmoid(), backend=backend)
        y = bpx.to_host(net.forward(z))
        assert np.all((y >= 0) & (y <= 1)) and y[0, 1] == 0.0 and y[0, 0] == 1.0


def test_unknown_loss_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'.*half_squared_error.*softmax_cross_entropy"):
        bpx.get_loss("hinge")


def test_logit_losses_refuse_a_final_softmax_or_sigmoid():
    net = bpx.Sequential(bpx.Dense(3, 2), bpx.Softmax(), seed=0)
    with pytest.raises(ValueError, match=r"takes logits.*remove the final Softmax"):
        net.train_step([[1.0, 2.0, 3.0]], [1], "softmax_cross_entropy", "sgd")
    net = bpx.Sequential(bpx.Dense(3, 2), bpx.Sigmoid(), seed=0)
    with pytest.raises(ValueError, match="remove the final Sigmoid"):
        net.train_step([[1.0, 2.0, 3.0]], [[1.0, 0.0]], "bce", "sgd")


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float64",)))
def test_sigmoid_keeps_full_relative_precision(cfg):
    import math

    xs = [-700.0, -50.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 30.0, 50.0]
    reference = [1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v)) for v in xs]
    net = bpx.Sequential(bpx.Dense(1, 1, weight=[[1.0]]), bpx.Sigmoid(), backend=cfg.name, device=cfg.device,
                         dtype="float64")
    assert_close(net.forward([[v] for v in xs])[:, 0], reference, rtol=4e-16, atol=0)


def test_leaky_relu_slope_must_be_in_unit_interval():
    with pytest.raises(bpx.BpxValueError, match=r"LeakyReLU negative_slope must be <= 1.0, got 1.5"):
        bpx.LeakyReLU(1.5)
