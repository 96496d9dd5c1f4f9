"""Mixed precision: passes in bfloat16/float16 with float32 master weights and a dynamic loss scale
decided on the device; compared with float32 training, with the arithmetic of a skipped step,
with the compiled step, and on the meta device (no host synchronisation)."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close

CASES = [("torch", "bfloat16"), ("torch", "float16"), ("jax", "bfloat16"), ("numpy", "float16")]


def data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(4, 10))
    labels = rng.integers(0, 4, size=n)
    return centres[labels] + rng.normal(size=(n, 10)), labels


def train(backend, dtype, **fit):
    pytest.importorskip(backend)
    x, y = data()
    net = bpx.Sequential(bpx.Dense(10, 32), bpx.ReLU(), bpx.Dense(32, 4), backend=backend, dtype=dtype, seed=0)
    hist = net.fit(x, y, loss="ce", optimizer=bpx.SGD(lr=0.05, momentum=0.9), epochs=3, batch_size=32, seed=1,
                   verbose=0, **fit)
    return net, hist


@pytest.mark.parametrize("backend, dtype", CASES)
def test_low_precision_training_tracks_float32(backend, dtype):
    low, low_hist = train(backend, dtype)
    full, full_hist = train(backend, "float32")
    assert low.backend.mixed and str(low.store.values.dtype).endswith("float32")  # master weights
    assert str(low.predict(data(4)[0]).dtype).endswith(dtype)  # the passes run in low precision
    assert abs(low_hist["accuracy"][-1] - full_hist["accuracy"][-1]) < 0.03
    assert low_hist["loss"][-1] == pytest.approx(full_hist["loss"][-1], rel=0.1, abs=0.02)
    low_w, full_w = bpx.to_host(low.layers[0].weight.value), bpx.to_host(full.layers[0].weight.value)
    eps = float(np.finfo(np.float16).eps) if dtype == "float16" else 2.0**-8
    assert np.abs(low_w.astype(np.float64) - full_w).max() < 50 * eps  # close to the float32 run


def test_a_step_with_an_overflowing_gradient_is_skipped_and_halves_the_scale():
    net = bpx.Sequential(bpx.Dense(3, 2), backend="numpy", dtype="float16", seed=0)
    before = net.state_dict()
    opt = bpx.SGD(lr=0.1, momentum=0.9)
    net.loss_scale.scale.value = net.xp.asarray(1e30, dtype=net.xp.float32)  # the scaled gradient overflows
    x, t = [[1.0, 2.0, 3.0]], [[0.5, -0.5]]
    with np.errstate(over="ignore", invalid="ignore"):
        net.train_step(x, t, "mse", opt)
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())  # nothing moved
    assert float(bpx.to_host(net.loss_scale.scale.value)) == np.float32(5e29)
    assert not np.any(bpx.to_host(opt.state["velocity"]))  # the state did not move either
    net.loss_scale.scale.value = net.xp.asarray(4.0, dtype=net.xp.float32)
    net.loss_scale.growth_interval = 2
    for _ in range(2):
        net.train_step(x, t, "mse", opt)
    assert float(bpx.to_host(net.loss_scale.scale.value)) == 8.0  # doubled after 2 finite steps
    assert not all(np.array_equal(before[k], v) for k, v in net.state_dict().items())


def test_the_loss_scale_divides_out_exactly():
    """Scaling by a power of two and dividing afterwards changes no float32 gradient."""
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    grads = []
    for scale in (1.0, 1024.0):
        net = bpx.Sequential(bpx.Dense(3, 2), backend="numpy", dtype="float16", seed=0)
        net.loss_scale.scale.value = net.xp.asarray(scale, dtype=net.xp.float32)
        net.train_step(x, t, "mse", bpx.SGD(lr=0.1))
        grads.append(bpx.to_host(net.layers[0].weight.grad))
    assert grads[0].dtype == np.float32
    assert_close(grads[1], grads[0], dtype="float16")


def test_compiled_mixed_precision_equals_eager():
    pytest.importorskip("jax")
    eager, _ = train("jax", "bfloat16")
    fast, _ = train("jax", "bfloat16", compile=True)
    for name, value in fast.state_dict().items():
        assert_close(value, eager.state_dict()[name], dtype="bfloat16", err_msg=name)


def test_mixed_precision_step_has_no_host_sync():
    torch = pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(6, 8), bpx.ReLU(), bpx.Dense(8, 3), backend="torch", device="meta",
                         dtype="bfloat16", seed=0)
    x = torch.empty((4, 6), device="meta")
    value = net.train_step(x, torch.zeros(4, dtype=torch.int64, device="meta"), "ce", bpx.Adam())
    assert value.device.type == "meta" and net.loss_scale.scale.value.device.type == "meta"


def test_backends_without_low_precision_say_so():
    with pytest.raises(bpx.BackendError, match="the Array API standard has no float16 or bfloat16"):
        bpx.Sequential(bpx.Dense(2, 2), backend="array_api_strict", dtype="float16")
    with pytest.raises(bpx.BackendError, match="NumPy has float16 but no bfloat16"):
        bpx.Sequential(bpx.Dense(2, 2), backend="numpy", dtype="bfloat16")
