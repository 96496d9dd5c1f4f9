"""The :class:`Backend`: one array namespace, one device on it and one float dtype.

Layers, losses and optimizers never guess where arrays live: they receive device arrays and use
``backend.xp`` (an Array API namespace). Besides the namespace, a backend offers three fast paths
for operations the standard spells less efficiently, each with a standard fallback that the test
suite checks against it: :meth:`Backend.take_rows` (PyTorch's ``index_select`` without
array-api-compat's negative-index handling), :meth:`Backend.matmul_into` (the library's own
``matmul(out=)`` where it has one — NumPy, CuPy, PyTorch — so that gradients are written straight
into their flat buffer) and :meth:`Backend.relu_backward` (PyTorch's fused ``threshold_backward``;
a boolean factor on NumPy and CuPy). They come from the library module the backend resolves by
name, as the other backends' device objects do.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import array_api_compat as aac

from ..errors import BackendError, BpxTypeError, DeviceMismatchError, ShapeError, StateError
from ..host.arrays import as_host_array, is_host
from ..version import DISTRIBUTION

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
NAMES = (*BACKENDS, "auto")
FLOAT_DTYPES = ("float32", "float64")
#: Low-precision compute dtypes: parameters stay float32 ("master weights"), passes run in these.
MIXED_DTYPES = ("bfloat16", "float16")
DEFAULT_DTYPE = "float32"


# The pip command that installs each optional backend.
INSTALL_HINTS = {
    "cupy": f'pip install "{DISTRIBUTION}[cuda12]"  (or "{DISTRIBUTION}[cuda13]" for CUDA 13)',
    "torch": f'pip install "{DISTRIBUTION}[torch]"',
    "jax": f'pip install "{DISTRIBUTION}[jax]"',
    "array_api_strict": f'pip install "{DISTRIBUTION}[test]"  (or: pip install array-api-strict)',
}
MODULES = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "jax": "jax", "array_api_strict": "array_api_strict"}


@dataclass(frozen=True, eq=False)
class Backend:
    """An array namespace, a device on it and a float dtype.

    Attributes:
        name: one of ``BACKENDS``.
        xp: the Array API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
        device: the device object of that library where every array is created.
        dtype: the float dtype object of ``xp`` in which passes compute (float32, float64, or the
            low-precision bfloat16/float16 of mixed precision).
        dtype_name: ``"float32"``, ``"float64"``, ``"bfloat16"`` or ``"float16"``.
        master_dtype: the dtype parameters and optimizer state are kept in (``dtype``, except
            float32 under mixed precision).
        int_dtype: the namespace's default integer dtype (int64; int32 on JAX without x64).
        mutable: whether arrays can be updated in place (False for JAX).
        matmul_out: whether :meth:`matmul_into` writes in place (NumPy, CuPy, PyTorch).
        narrow_transposed: whether products with few columns are computed transposed (see
            :meth:`matmul`): PyTorch on the CPU with MKL, 1.3-6x slower for them as they are.
        fold_bias: whether ``Dense`` uses the bias trick in training, ``[x, 1] @ [W; b]``: one
            operation fewer per layer and step, which pays where each operation is a kernel launch
            (every backend but NumPy). On NumPy the copy into ``[x, 1]`` and the odd inner size
            cost more than the saved operation (2.2 % of an epoch at batch 1024, measured).
    """

    name: str
    xp: Any
    device: Any
    dtype: Any
    dtype_name: str = field(default=DEFAULT_DTYPE)
    int_dtype: Any = None
    mutable: bool = True
    matmul_out: bool = False
    fold_bias: bool = True
    narrow_transposed: bool = False
    _take_rows: Any = None
    _matmul: Any = None
    _relu_backward: Any = None
    master_dtype: Any = None

    def __post_init__(self) -> None:
        if self.master_dtype is None:
            object.__setattr__(self, "master_dtype", self.dtype)

    @property
    def mixed(self) -> bool:
        """True under mixed precision: passes in ``dtype`` (bfloat16/float16), float32 master weights."""
        return self.dtype_name in MIXED_DTYPES

    @property
    def master_dtype_name(self) -> str:
        """The name of :attr:`master_dtype` (what checkpoints record and values must fit)."""
        return "float32" if self.mixed else self.dtype_name

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={str(self.device)!r}, dtype={self.dtype_name!r})"

    def describe(self) -> str:
        """A short human-readable description, e.g. ``numpy cpu float32``."""
        return f"{self.name} {self.device} {self.dtype_name}"

    def with_dtype(self, dtype: Any) -> Backend:
        """The same namespace and device with another float dtype."""
        if dtype is None or dtype_name(dtype) == self.dtype_name:
            return self
        return get_backend(self.name, self.device, dtype)

    @property
    def holds_data(self) -> bool:
        """False on devices that hold shapes only (PyTorch's ``meta``): nothing can be read back."""
        return not (self.name == "torch" and getattr(self.device, "type", None) == "meta")

    def require_data(self, what: str) -> None:
        """Raise :class:`StateError` when this device holds no data (``meta``), naming ``what``."""
        if not self.holds_data:
            raise StateError(f"{what} needs values, but the network is on PyTorch's 'meta' device, which holds "
                             "shapes only; move it first, e.g. net.to('torch', device='cpu')")

    # ------------------------------------------------------------------ host -> device
    def asarray(self, x: Any, dtype: Any = None, *, copy: bool | None = None, name: str = "input") -> Any:
        """Move host data (list, scalar, NumPy array) or a same-backend array onto this device.

        ``dtype`` may be a dtype of ``xp``; ``None`` keeps the data's kind (floats become
        ``self.dtype``). Raises :class:`DeviceMismatchError` for arrays of another library or
        device and bpx errors for ragged or non-numeric host data, naming ``name``.
        """
        xp = self.xp
        if is_host(x):
            host = as_host_array(x, name)
            if dtype is None and host.dtype.kind == "f":
                dtype = self.dtype
            return self.from_host(host, dtype, copy)
        self.check_array(x, name)
        if getattr(x, "requires_grad", False):  # a torch tensor in an autograd graph: bpx builds none
            x = x.detach()
        if dtype is not None and x.dtype != dtype:
            return xp.astype(x, dtype)
        if copy:
            return xp.asarray(x, copy=True)
        return x

    def from_host(self, host: Any, dtype: Any = None, copy: bool | None = None) -> Any:
        """A normalised host array (see :func:`bpx.host.arrays.as_host_array`) on this device,
        converted to ``dtype`` when given."""
        if self.name == "numpy":  # already where it belongs: at most a cast (array-api-compat costs µs)
            return host.astype(dtype, copy=bool(copy)) if dtype is not None else (host.copy() if copy else host)
        if self.name == "jax":  # device_put needs half the host memory of jnp.asarray
            import jax

            # On CPU, device_put may share an aligned host buffer (may_alias=False does not stop
            # it for NumPy input), so copy=True copies on the host first.
            if dtype is not None or copy:
                host = host.astype(host.dtype if dtype is None else dtype, copy=bool(copy))
            return jax.device_put(host, self.device)
        return self.xp.asarray(host, dtype=dtype, device=self.device, copy=copy)

    def check_array(self, x: Any, name: str = "input") -> None:
        """Raise :class:`DeviceMismatchError` unless ``x`` is an array of this backend and device."""
        try:
            xp = aac.array_namespace(x)
        except TypeError:
            raise BpxTypeError(f"{name}: expected an array, list or number, got {type(x).__name__}") from None
        if not _same_namespace(xp, self.xp):
            raise DeviceMismatchError(
                f"{name} is a {_library(x)} array but the network uses the {self.name!r} backend; "
                f"convert it first, e.g. net.backend.asarray(bpx.to_host({name})), or build the "
                f"network with backend={_library(x)!r}")
        dev = aac.device(x)
        if not _same_device(dev, self.device):
            raise DeviceMismatchError(
                f"{name} lives on device {dev!r} but the network is on {self.device!r}; "
                f"move it with net.backend.asarray(bpx.to_host({name})) "
                f"(or the library's own call, e.g. tensor.to({str(self.device)!r}) for PyTorch)")

    # ------------------------------------------------------------------ creation and fast paths
    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype, device=self.device)

    def ones(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self.xp.ones(shape, dtype=self.dtype if dtype is None else dtype, device=self.device)

    def take_rows(self, x: Any, idx: Any) -> Any:
        """``xp.take(x, idx, axis=0)`` for non-negative ``idx`` (1 operation on every backend)."""
        if self._take_rows is not None:
            return self._take_rows(x, idx)
        return self.xp.take(x, idx, axis=0)

    def matmul(self, a: Any, b: Any) -> Any:
        """``a @ b`` for 2-D ``a`` ``(m, k)`` and ``b`` ``(k, n)``. Where :attr:`narrow_transposed`
        holds and the product is narrow (see :func:`narrow_product`) it is computed as
        ``(bᵀ aᵀ)ᵀ``: the same values, returned as a transposed (column-major) view."""
        if self.narrow_transposed and narrow_product(a.shape, b.shape):
            return (b.mT @ a.mT).mT
        return a @ b

    def matmul_into(self, a: Any, b: Any, out: Any) -> None:
        """``out[...] = a @ b``, in place without a temporary where the library allows (a narrow
        product under :attr:`narrow_transposed`: computed as in :meth:`matmul`, then copied)."""
        if self._matmul is not None and not (self.narrow_transposed and narrow_product(a.shape, b.shape)):
            self._matmul(a, b, out=out)
        else:
            out[...] = self.matmul(a, b)

    def split_batches(self, stacked: Any, batches: int) -> list[Any]:
        """The rows of ``batches`` equal consecutive batches ``(batches·m, ...)`` as one view
        ``(m, ...)`` per batch (no operation for a single batch)."""
        if batches == 1:
            return [stacked]
        xp = self.xp
        return list(xp.unstack(xp.reshape(stacked, (batches, -1, *stacked.shape[1:]))))

    def relu_backward(self, grad: Any, output: Any) -> Any:
        """``grad · [output > 0]``: ReLU's backward from its output (same shape), in place in
        ``grad`` where the library allows. 1 operation on PyTorch (``threshold_backward``, what its
        autograd runs), 2 on NumPy and CuPy (a boolean factor), 3 elsewhere (compare, cast,
        multiply). Where ``output`` is NaN the result is 0 or ``grad`` by library (the loss is
        already NaN there)."""
        if self._relu_backward is not None:
            return self._relu_backward(grad, output)
        grad *= self.xp.astype(output > 0, grad.dtype)
        return grad

    def shape_of(self, x: Any, name: str) -> tuple[int, ...]:
        """``x.shape`` as Python ints; raises :class:`ShapeError` for unknown (lazy) dimensions."""
        shape = tuple(x.shape)
        if any(d is None for d in shape):
            raise ShapeError(f"{name} has an unknown dimension {shape}; bpx needs concrete shapes")
        return tuple(int(d) for d in shape)


def narrow_product(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> bool:
    """Whether ``(m, k) @ (k, n)`` is a narrow product: 2-15 columns, ``m ≥ 64``, ``k ≥ 32`` and
    ``m·k ≥ 16384`` (a classifier's output layer and its weight gradient). MKL, which PyTorch uses
    on the CPU, computes these 1.3-6x faster as ``(bᵀ aᵀ)ᵀ`` (the result then has few rows);
    smaller products gain nothing, and one column is faster as it is (measured: README, "Performance")."""
    (m, k), n = a_shape, b_shape[1]
    return 2 <= n < 16 and m >= 64 and k >= 32 and m * k >= 16384


def dtype_name(dtype: Any) -> str:
    """The name (``"float32"``, ``"float64"``, ``"bfloat16"``, ``"float16"``) of a dtype name or
    object; raises :class:`BackendError` otherwise."""
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None) or str(dtype)
    name = str(name).removeprefix("torch.")
    if name not in FLOAT_DTYPES + MIXED_DTYPES:
        raise BackendError(f"dtype must be one of {FLOAT_DTYPES + MIXED_DTYPES}, got {dtype!r}")
    return name


def _library(x: Any) -> str:
    for check, name in ((aac.is_numpy_array, "numpy"), (aac.is_cupy_array, "cupy"),
                        (aac.is_torch_array, "torch"), (aac.is_jax_array, "jax")):
        if check(x):
            return name
    return type(x).__module__.split(".")[0]


def _same_namespace(a: Any, b: Any) -> bool:
    return a is b or getattr(a, "__name__", a) == getattr(b, "__name__", b)


def _same_device(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


# ---------------------------------------------------------------------- resolution
def get_backend(name: str | Backend | None = None, device: Any = None, dtype: Any = None) -> Backend:
    """Return the :class:`Backend` for ``name`` (``numpy``, ``cupy``, ``torch``, ``jax``,
    ``array_api_strict`` or ``auto``), ``device`` and float ``dtype`` (default float32).

    ``name=None`` reads ``$BPX_BACKEND`` and falls back to ``"numpy"``. ``auto`` picks CuPy
    when a CUDA device is visible, else NumPy. Raises :class:`BackendError` for an unknown
    name, a missing package (naming the pip command), CuPy without a CUDA device, or a device
    the backend does not have.
    """
    if isinstance(name, Backend):
        if device is not None and not _same_device(device, name.device):
            return get_backend(name.name, device, dtype or name.dtype_name)
        return name.with_dtype(dtype)
    if name is None:
        name = os.environ.get("BPX_BACKEND") or "numpy"
    if not isinstance(name, str):
        raise BackendError(f"backend must be a name ({', '.join(NAMES)}) or a Backend, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in NAMES:
        raise BackendError(f"unknown backend {name!r}; valid names: {', '.join(NAMES)}")
    if key == "auto":
        key = "cupy" if cuda_device_count() > 0 else "numpy"
    name_of_dtype = dtype_name(dtype if dtype is not None else DEFAULT_DTYPE)
    library = _import_backend_module(key)
    xp, dev, take_rows = _RESOLVERS[key](device, name_of_dtype)
    int_dtype = xp.__array_namespace_info__().default_dtypes(device=dev)["integral"]
    in_place = key in ("numpy", "cupy", "torch")
    compute = _compute_dtype(key, xp, name_of_dtype)
    return Backend(key, xp, dev, compute, name_of_dtype, int_dtype, mutable=key != "jax", matmul_out=in_place,
                   fold_bias=key != "numpy", narrow_transposed=_narrow_transposed(key, library, dev),
                   _take_rows=take_rows, _matmul=library.matmul if in_place else None,
                   _relu_backward=_relu_backward(key, library),
                   master_dtype=xp.float32 if name_of_dtype in MIXED_DTYPES else compute)


def _narrow_transposed(key: str, library: Any, device: Any) -> bool:
    """Whether narrow products pay to be computed transposed: PyTorch on the CPU with MKL, where
    they were measured (see :func:`narrow_product`); elsewhere the library's own choice stands."""
    return key == "torch" and device.type == "cpu" and bool(library.backends.mkl.is_available())


def _relu_backward(key: str, library: Any) -> Any:
    """The library's own ``relu_backward(grad, output)`` (see :meth:`Backend.relu_backward`), or None."""
    if key == "torch":
        threshold_backward = library.ops.aten.threshold_backward
        return lambda grad, output: threshold_backward(grad, output, 0)
    if key in ("numpy", "cupy"):
        multiply = library.multiply
        return lambda grad, output: multiply(grad, output > 0, out=grad)
    return None


def _compute_dtype(key: str, xp: Any, name: str) -> Any:
    """The dtype object ``name`` of namespace ``xp``; low precision only where the library has it."""
    dtype = getattr(xp, name, None)
    if dtype is None:
        hint = {"array_api_strict": "the Array API standard has no float16 or bfloat16",
                "numpy": "NumPy has float16 but no bfloat16",
                "cupy": "CuPy has float16 but no bfloat16"}.get(key, f"{key} does not provide it")
        raise BackendError(f"dtype {name!r} is not available on the {key!r} backend ({hint}); mixed precision "
                           "runs on torch and jax (bfloat16 or float16), numpy and cupy (float16)")
    return dtype


def _import_backend_module(key: str) -> Any:
    try:
        return importlib.import_module(MODULES[key])
    except ImportError as err:
        raise BackendError(
            f"backend {key!r} needs the package {MODULES[key]!r}, which is not installed "
            f"({err}); install it with: {INSTALL_HINTS[key]}") from None


def cuda_device_count() -> int:
    """Number of CUDA devices CuPy can see (0 when CuPy or the driver is missing)."""
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, CUDARuntimeError (no driver), ...
        return 0


def _numpy(device: Any, dtype: str) -> tuple[Any, Any, Any]:
    if device is not None and not (isinstance(device, str) and device == "cpu"):
        raise BackendError(f"the numpy backend has only the device 'cpu', not {device!r}")
    import array_api_compat.numpy as xp
    return xp, "cpu", None


def _array_api_strict(device: Any, dtype: str) -> tuple[Any, Any, Any]:
    import array_api_strict as xp
    info = xp.__array_namespace_info__()
    devices = info.devices()
    if device is None:
        return xp, info.default_device(), None
    for d in devices:
        if device is d or str(device) in (str(d), getattr(d, "_device", None)):
            return xp, d, None
    raise BackendError(f"array_api_strict has no device {device!r}; it has {[str(d) for d in devices]}")


def _torch(device: Any, dtype: str) -> tuple[Any, Any, Any]:
    import array_api_compat.torch as xp
    import torch
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise BackendError(f"torch: invalid device {device!r}: {err}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if dev.index is None else dev.index
        if index >= count:
            raise BackendError(f"torch: device {str(dev)!r} is not available "
                               f"({count} CUDA device(s) visible; torch {torch.__version__}, "
                               f"CUDA build: {torch.version.cuda})")
        dev = torch.device("cuda", index)
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise BackendError("torch: device 'mps' (Apple GPU) is not available on this machine")
        if dtype == "float64":
            raise BackendError("torch: the 'mps' device has no float64; use dtype='float32'")
    elif dev.type not in ("cpu", "meta"):
        raise BackendError(f"torch: unsupported device {str(dev)!r}; use 'cpu', 'cuda:N', 'mps' or 'meta'")

    def take_rows(x: Any, idx: Any) -> Any:
        return torch.index_select(x, 0, idx)

    return xp, dev, take_rows


def _jax(device: Any, dtype: str) -> tuple[Any, Any, Any]:
    import jax
    import jax.numpy as xp
    if dtype == "float64" and not jax.config.jax_enable_x64:
        # float64 is impossible without x64 mode; enabling it only widens what is allowed.
        jax.config.update("jax_enable_x64", True)
    if device is None:
        return xp, jax.devices()[0], None
    if isinstance(device, jax.Device):
        return xp, device, None
    platform, _, index = str(device).partition(":")
    try:
        found = jax.devices(platform)
        return xp, found[int(index or 0)], None
    except (RuntimeError, ValueError, IndexError) as err:
        raise BackendError(f"jax: device {device!r} is not available ({err}); "
                           f"visible devices: {jax.devices()}") from None


def _cupy(device: Any, dtype: str) -> tuple[Any, Any, Any]:
    import array_api_compat.cupy as xp
    import cupy
    count = cuda_device_count()
    if count == 0:
        try:
            cupy.cuda.runtime.getDeviceCount()
            reason = "the CUDA runtime reports 0 devices"
        except Exception as err:  # the exact driver/runtime error
            reason = f"{type(err).__name__}: {err}"
        raise BackendError(f"CuPy {cupy.__version__} is installed but no CUDA device is visible ({reason}); "
                           "use backend='numpy' (or 'auto', which falls back to NumPy)")
    index = 0 if device is None else _cuda_index(device)
    if not 0 <= index < count:
        raise BackendError(f"cupy: device {device!r} is not available; {count} CUDA device(s) visible")
    return xp, cupy.cuda.Device(index), None


def _cuda_index(device: Any) -> int:
    if hasattr(device, "id"):
        return int(device.id)
    text = str(device).removeprefix("cuda").lstrip(":")
    try:
        return int(text or 0)
    except ValueError:
        raise BackendError(f"cupy: invalid device {device!r}; use an index such as 0 or 'cuda:1'") from None


_RESOLVERS = {"numpy": _numpy, "array_api_strict": _array_api_strict, "torch": _torch,
              "jax": _jax, "cupy": _cupy}
