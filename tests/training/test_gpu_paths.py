"""The GPU-only paths: the CUDA-graph compiled step (torch.compile, mode="reduce-overhead") and mixed
precision on CUDA devices, each against the eager float32 run on the same device. Without a CUDA
device every test skips with the reason (``pytest -m gpu`` selects them)."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close
from bpx.testing.params import BackendConfig, availability


def gpu_param(name: str, device: str | None, dtype: str) -> object:
    reason = availability(BackendConfig(name, device, "float32"))
    marks = [pytest.mark.gpu] + ([pytest.mark.skip(reason=reason)] if reason else [])
    return pytest.param((name, device, dtype), id=f"{name}-{device or 'default'}-{dtype}", marks=marks)


def data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(4, 10))
    labels = rng.integers(0, 4, size=n)
    return centres[labels] + rng.normal(size=(n, 10)), labels


def trained(name, device, dtype, **fit):
    x, y = data()
    net = bpx.Sequential(bpx.Dense(10, 32), bpx.ReLU(), bpx.Dense(32, 4), backend=name, device=device, dtype=dtype,
                         seed=0)
    hist = net.fit(x, y, loss="ce", optimizer=bpx.SGD(lr=0.05, momentum=0.9), epochs=3, batch_size=32, seed=1,
                   verbose=0, **fit)
    return net, hist


@pytest.mark.parametrize("place", [gpu_param("torch", "cuda", "float32")])
def test_the_cuda_graph_step_equals_the_eager_step(place):
    name, device, dtype = place
    eager, eager_hist = trained(name, device, dtype)
    fast, fast_hist = trained(name, device, dtype, compile=True)
    for key, value in fast.state_dict().items():
        assert_close(value, eager.state_dict()[key], dtype=dtype, err_msg=key)
    assert_close(fast_hist["loss"], eager_hist["loss"], dtype=dtype)


@pytest.mark.parametrize("place", [gpu_param("torch", "cuda", "bfloat16"), gpu_param("torch", "cuda", "float16"),
                                   gpu_param("cupy", None, "float16")])
def test_mixed_precision_on_the_gpu_tracks_float32(place):
    name, device, dtype = place
    low, low_hist = trained(name, device, dtype)
    _, full_hist = trained(name, device, "float32")
    assert low.backend.mixed and str(low.store.values.dtype).endswith("float32")
    assert abs(low_hist["accuracy"][-1] - full_hist["accuracy"][-1]) < 0.03
    assert low_hist["loss"][-1] == pytest.approx(full_hist["loss"][-1], rel=0.1, abs=0.02)
