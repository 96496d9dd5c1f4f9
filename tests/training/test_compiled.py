"""Compiled steps: the same train_step under jax.jit (whole chunks of batches in one lax.scan) and
torch.compile, equal to the eager step within the dtype's tolerance, cached across fit calls."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close
from bpx.training import compiled


def data(n=640, d=20, k=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, size=n)


def trained(backend, dtype, compile, optimizer=None, epochs=2, batch_size=64, **fit):
    x, y = data()
    net = bpx.Sequential(bpx.Dense(20, 16), bpx.Tanh(), bpx.Dense(16, 5), backend=backend, dtype=dtype, seed=0)
    hist = net.fit(x, y, loss="ce", optimizer=optimizer or bpx.SGD(lr=0.1, momentum=0.9), epochs=epochs,
                   batch_size=batch_size, seed=1, verbose=0, compile=compile, **fit)
    return net, hist


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_compiled_chunks_equal_the_eager_step(dtype):
    pytest.importorskip("jax")
    # 640 samples in batches of 48: 13 full batches in chunks of 5 (check_every) and a last batch of 16
    eager, eager_hist = trained("jax", dtype, False, batch_size=48, check_every=5)
    fast, fast_hist = trained("jax", dtype, True, batch_size=48, check_every=5)
    for name, value in fast.state_dict().items():
        assert_close(value, eager.state_dict()[name], dtype=dtype, err_msg=name)
    assert_close(fast_hist.batch_losses, eager_hist.batch_losses, dtype=dtype)
    assert fast_hist["accuracy"] == eager_hist["accuracy"]
    assert fast.step_count == eager.step_count == 2 * 14


def test_jax_compiled_adam_with_a_schedule_tracks_eager():
    """The learning rate and both step counts are traced: a schedule and Adam's bias correction stay
    exact without recompiling."""
    pytest.importorskip("jax")
    runs = [trained("jax", "float64", c, bpx.Adam(lr=0.01), epochs=3, lr_schedule=bpx.StepLR(1, 0.5))
            for c in (False, True)]
    for name, value in runs[1][0].state_dict().items():
        assert_close(value, runs[0][0].state_dict()[name], err_msg=name)


def test_a_second_fit_compiles_nothing():
    pytest.importorskip("jax")
    trained("jax", "float32", True, epochs=1)
    builds = compiled.STATS.builds
    trained("jax", "float32", True, epochs=1, optimizer=bpx.SGD(lr=0.5, momentum=0.9))  # another network and lr
    net, _ = trained("jax", "float32", True, epochs=1)
    net.fit(*data(), loss="ce", optimizer=bpx.SGD(lr=0.1, momentum=0.9), epochs=1, batch_size=64, compile=True,
            verbose=0)
    assert compiled.STATS.builds == builds
    trained("jax", "float32", True, epochs=1, optimizer=bpx.SGD(lr=0.1, momentum=0.5))  # another momentum: new
    assert compiled.STATS.builds == builds + 1


def test_torch_compile_equals_the_eager_step():
    torch = pytest.importorskip("torch")
    eager, eager_hist = trained("torch", "float32", False)
    before = compiled.STATS.builds
    fast, fast_hist = trained("torch", "float32", True)
    for name, value in fast.state_dict().items():
        assert_close(value, eager.state_dict()[name], dtype="float32", err_msg=name)
    assert_close(fast_hist["loss"], eager_hist["loss"], dtype="float32")
    assert compiled.STATS.builds == before + 1
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    fast.fit(*data(), loss="ce", optimizer=bpx.SGD(lr=0.05, momentum=0.9), epochs=1, batch_size=64, compile=True,
             verbose=0)  # cached: neither bpx nor dynamo compiles again
    assert compiled.STATS.builds == before + 1
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_backends_without_a_compiler_say_so():
    x, y = data(64)
    with pytest.raises(bpx.BpxValueError, match="compile=True needs a backend with a compiler"):
        bpx.Sequential(bpx.Dense(20, 5), seed=0).fit(x, y, loss="ce", optimizer="sgd", compile=True, verbose=0)
