"""Backend selection: names, precedence, and the errors users meet."""

import re
import sys

import numpy as np
import pytest

import bpx
from bpx.backend import NAMES, cuda_device_count
from bpx.errors import BackendError
from bpx.testing import backend_params


def test_default_is_numpy_float32(monkeypatch):
    monkeypatch.delenv("BPX_BACKEND", raising=False)
    backend = bpx.get_backend()
    assert backend.name == "numpy" and backend.dtype_name == "float32" and backend.device == "cpu"


def test_precedence_argument_over_environment(monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.setenv("BPX_BACKEND", "array_api_strict")
    assert bpx.get_backend().name == "array_api_strict"
    assert bpx.get_backend("numpy").name == "numpy"
    net = bpx.Sequential(bpx.Dense(2, 1), seed=0)
    assert net.backend.name == "array_api_strict"


def test_unknown_name_lists_valid_names(monkeypatch):
    with pytest.raises(BackendError, match="unknown backend 'tensorflow'; valid names: " + ", ".join(NAMES)):
        bpx.get_backend("tensorflow")
    monkeypatch.setenv("BPX_BACKEND", "mxnet")
    with pytest.raises(BackendError, match="unknown backend 'mxnet'"):
        bpx.Sequential(bpx.Dense(2, 1))


@pytest.mark.parametrize("name, extra", [("torch", "bpx-backprop[torch]"), ("jax", "bpx-backprop[jax]"),
                                         ("cupy", "bpx-backprop[cuda12]")])
def test_missing_package_names_the_extra(monkeypatch, name, extra):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail as if not installed
    with pytest.raises(BackendError, match=rf"needs the package '{name}', which is not installed.*{re.escape(extra)}"):
        bpx.get_backend(name)


def test_cupy_without_cuda_device():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match=r"bpx-backprop\[cuda12\]"):
            bpx.get_backend("cupy")
        return
    if cuda_device_count() > 0:
        pytest.skip("a CUDA device is visible")
    with pytest.raises(BackendError, match="no CUDA device is visible"):
        bpx.get_backend("cupy")


def test_auto_falls_back_to_numpy_without_cuda():
    if cuda_device_count() > 0:
        pytest.skip("a CUDA device is visible: auto picks CuPy")
    assert bpx.get_backend("auto").name == "numpy"


@pytest.mark.parametrize("name, device, message", [
    ("numpy", "cuda:0", "only the device 'cpu'"),
    ("array_api_strict", "device7", "array_api_strict has no device 'device7'"),
    ("torch", "cuda:3", "torch: device 'cuda:3' is not available"),
    ("torch", "tpu", "torch: invalid device 'tpu'"),
    ("jax", "gpu:0", "jax: device 'gpu:0' is not available"),
])
def test_device_the_backend_does_not_have(name, device, message):
    pytest.importorskip(name)
    if name == "torch" and device.startswith("cuda"):
        import torch
        if torch.cuda.device_count() > 3:
            pytest.skip("this machine has that CUDA device")
    with pytest.raises(BackendError, match=message):
        bpx.get_backend(name, device)


def test_bad_dtype():
    with pytest.raises(BackendError, match="dtype must be one of"):
        bpx.get_backend("numpy", dtype="int8")
    assert bpx.get_backend("numpy", dtype="float16").mixed  # float16: mixed precision


def test_strict_devices_resolve():
    xp = pytest.importorskip("array_api_strict")
    backend = bpx.get_backend("array_api_strict", "device1", "float64")
    assert backend.device == xp.Device("device1")
    x = backend.asarray(np.ones((2, 2)))
    assert x.device == xp.Device("device1") and x.dtype == xp.float64


def test_jax_float64_enables_x64():
    jax = pytest.importorskip("jax")
    backend = bpx.get_backend("jax", dtype="float64")
    assert jax.config.jax_enable_x64
    assert backend.asarray([0.1]).dtype == backend.xp.float64


def test_to_host_from_every_backend():
    for name, device in [("numpy", None), ("array_api_strict", "device1"), ("torch", "cpu"), ("jax", None)]:
        try:
            backend = bpx.get_backend(name, device, "float64")
        except BackendError:
            continue
        host = bpx.to_host(backend.asarray([[1.5, 2.5]]))
        assert isinstance(host, np.ndarray) and host.tolist() == [[1.5, 2.5]]


@pytest.mark.parametrize("cfg", backend_params())
def test_relu_backward_is_the_gradient_times_the_positive_mask(cfg):
    """Each library's fast path (PyTorch's threshold_backward, NumPy's boolean factor, the standard
    compare-cast-multiply elsewhere) against the mask computed on the host, with zeros of both
    signs and the smallest normal positive value (XLA on the CPU flushes subnormals to zero)."""
    backend = cfg.backend()
    rng = np.random.default_rng(3)
    tiny = np.finfo(cfg.dtype).tiny
    output = np.maximum(rng.normal(size=(7, 5)), 0.0).astype(cfg.dtype)
    output[0, :4] = [0.0, -0.0, tiny, 1.0]
    grad = rng.normal(size=(7, 5)).astype(cfg.dtype)
    expected = grad * (output > 0)
    got = backend.relu_backward(backend.asarray(grad), backend.asarray(output))
    assert bpx.to_host(got).tolist() == expected.tolist()


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float32",)))
def test_only_numpy_does_not_fold_the_bias(cfg):
    """The bias trick saves operations where each is a kernel launch; on NumPy it costs more than it saves."""
    backend = cfg.backend()
    assert backend.fold_bias == (backend.name != "numpy")


def torch_dispatches():
    """A PyTorch dispatch mode recording ``(operation, shapes of its positional tensors)`` of every
    call made under it, in ``.calls``."""
    torch = pytest.importorskip("torch")
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            self.calls.append((func.__name__, shapes))
            return func(*args, **(kwargs or {}))

    return Record()


def test_relu_backward_is_one_operation_on_torch():
    """PyTorch's fast path is its fused kernel (the standard spelling would be 3 dispatches)."""
    torch = pytest.importorskip("torch")
    backend = bpx.get_backend("torch")
    grad, output = torch.ones(3, 4), torch.relu(torch.randn(3, 4))
    with torch_dispatches() as seen:
        backend.relu_backward(grad, output)
    assert [name for name, _ in seen.calls] == ["threshold_backward.default"]


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float64",)))
@pytest.mark.parametrize("kind", ["float64", "int64"])
def test_asarray_with_copy_never_aliases_the_host_array(cfg, kind):
    """copy=True gives an array that a later change of the host data does not reach, whether or not
    a cast was needed. NumPy's device is the host, and JAX on CPU shares aligned host buffers of a
    few KiB about half the time (and transfers the smallest asynchronously), so each size is tried
    several times: without the copy, this fails on both."""
    backend = cfg.backend()
    for size in (2, 1024, 8192):
        for _ in range(8):
            host = np.ones(size, dtype=kind)
            moved = backend.asarray(host, copy=True)
            host[0] = 99
            assert bpx.to_host(moved)[0] == 1, (size, kind)


@pytest.mark.parametrize("m, k, n, narrow", [
    (128, 257, 10, True),    # a classifier's output layer (with the bias row)
    (257, 128, 10, True),    # its weight gradient
    (64, 256, 2, True), (64, 256, 15, True), (512, 32, 4, True),
    (128, 256, 1, False),    # one column: faster as it is
    (128, 256, 16, False),   # 16 columns: MKL's own kernel is fast again
    (63, 1024, 10, False),   # too few rows
    (1024, 31, 10, False),   # too short an inner dimension
    (128, 127, 10, False),   # m·k = 16256 < 16384
])
def test_narrow_product_bounds(m, k, n, narrow):
    """The measured bounds of the transposed layout (see ``narrow_product``)."""
    from bpx.backend.core import narrow_product

    assert narrow_product((m, k), (k, n)) is narrow


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float64",)))
@pytest.mark.parametrize("m, k, n", [(128, 257, 10), (257, 128, 10), (128, 256, 64), (3, 4, 2)])
def test_matmul_equals_the_host_product(cfg, m, k, n):
    """``Backend.matmul`` and ``matmul_into`` give ``a @ b`` whatever the layout they choose,
    for ``a`` stored as it is and as a transposed view (the weight-gradient case)."""
    backend = cfg.backend()
    rng = np.random.default_rng(m * k * n)
    a_host, b_host = rng.normal(size=(m, k)), rng.normal(size=(k, n))
    a_t = backend.asarray(np.ascontiguousarray(a_host.T)).mT  # (m, k) as a view of (k, m)
    for a in (backend.asarray(a_host), a_t):
        b = backend.asarray(b_host)
        bpx.testing.assert_close(backend.matmul(a, b), a_host @ b_host, dtype="float64")
        if backend.mutable:
            out = backend.zeros((m, n))
            backend.matmul_into(a, b, out)
            bpx.testing.assert_close(out, a_host @ b_host, dtype="float64")


def test_torch_cpu_multiplies_narrow_products_transposed():
    """On PyTorch's CPU a narrow product runs as (bᵀ aᵀ)ᵀ: one ``mm`` with the operands swapped
    (1.3-6x faster under MKL), and ``matmul_into`` adds one copy into the slot."""
    torch = pytest.importorskip("torch")
    backend = bpx.get_backend("torch")
    assert backend.narrow_transposed and not bpx.get_backend("numpy").narrow_transposed
    a, b, out = torch.ones(128, 257), torch.ones(257, 10), torch.empty(128, 10)
    wide, out_wide = torch.ones(257, 16), torch.empty(128, 16)
    with torch_dispatches() as seen:
        backend.matmul(a, b)
        backend.matmul_into(a, b, out)
        backend.matmul(a, wide)
        backend.matmul_into(a, wide, out_wide)
    products = [call for call in seen.calls if call[0] in ("mm.default", "mm.out")]
    narrow, wide_shapes = ((10, 257), (257, 128)), ((128, 257), (257, 16))
    # a wide product goes into its slot with out= (no temporary); a narrow one is copied there
    assert products == [("mm.default", narrow)] * 2 + [("mm.default", wide_shapes), ("mm.out", wide_shapes)]
    assert torch.equal(out, torch.full((128, 10), 257.0)) and torch.equal(out_wide, torch.full((128, 16), 257.0))
