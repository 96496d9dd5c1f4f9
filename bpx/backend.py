"""Backend selection: which array library (namespace), device and float dtype a network uses.

A :class:`Backend` is the one object that knows where arrays live. Layers, losses and
optimizers never guess: they receive device arrays and use ``backend.xp``.

Resolution of the backend name: explicit argument > ``$BPX_BACKEND`` > ``"numpy"``.
Host data (Python lists/scalars, NumPy arrays) is accepted everywhere and moved to the
device once by :meth:`Backend.asarray`; arrays of another library or on another device are
rejected with a message saying how to move them (see :meth:`Backend.asarray`).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import array_api_compat as aac
import numpy as np

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
NAMES = (*BACKENDS, "auto")
FLOAT_DTYPES = ("float32", "float64")
DEFAULT_DTYPE = "float32"

# The pip extra that installs each optional backend.
_EXTRAS = {
    "cupy": 'pip install "bpx[cuda12]"  (or "bpx[cuda13]" for CUDA 13)',
    "torch": 'pip install "bpx[torch]"',
    "jax": 'pip install "bpx[jax]"',
    "array_api_strict": 'pip install "bpx[test]"  (or: pip install array-api-strict)',
}
_MODULES = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "jax": "jax",
            "array_api_strict": "array_api_strict"}


class BackendError(RuntimeError):
    """A backend cannot be used as asked (unknown name, missing package, missing device)."""


class DeviceMismatchError(ValueError):
    """An array lives in another array library or on another device than the network."""


@dataclass(frozen=True, eq=False)
class Backend:
    """An array namespace, a device on it and a float dtype.

    Attributes:
        name: one of ``BACKENDS``.
        xp: the Array API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
        device: the device object of that library where every array is created.
        dtype: the float dtype object of ``xp`` (float32 or float64).
    """

    name: str
    xp: Any
    device: Any
    dtype: Any
    dtype_name: str = field(default=DEFAULT_DTYPE)
    int_dtype: Any = None

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r}, dtype={self.dtype_name!r})"

    def with_dtype(self, dtype: str | None) -> Backend:
        """The same namespace and device with another float dtype."""
        if dtype is None or _dtype_name(dtype) == self.dtype_name:
            return self
        return get_backend(self.name, self.device, dtype)

    # ------------------------------------------------------------------ host -> device
    def asarray(self, x: Any, dtype: Any = None, *, copy: bool | None = None, name: str = "input") -> Any:
        """Move host data (list, scalar, NumPy array) or a same-backend array onto this device.

        ``dtype`` may be a dtype of ``xp``; ``None`` keeps the data's kind (floats become
        ``self.dtype``). Raises :class:`DeviceMismatchError` for arrays of another library or
        device, naming ``name`` and how to move the array.
        """
        xp = self.xp
        if is_host(x):
            host = np.asarray(x)
            if dtype is None and host.dtype.kind == "f":
                dtype = self.dtype
            if self.name == "jax":  # device_put needs half the host memory of jnp.asarray
                import jax

                return jax.device_put(host if dtype is None else host.astype(np.dtype(dtype), copy=False),
                                      self.device)
            return xp.asarray(host, dtype=dtype, device=self.device, copy=copy)
        self.check_array(x, name)
        if getattr(x, "requires_grad", False):  # a torch tensor in an autograd graph: bpx builds none
            x = x.detach()
        if dtype is not None and x.dtype != dtype:
            return xp.astype(x, dtype)
        if copy:
            return xp.asarray(x, copy=True)
        return x

    def check_array(self, x: Any, name: str = "input") -> None:
        """Raise :class:`DeviceMismatchError` unless ``x`` is an array of this backend and device."""
        try:
            xp = aac.array_namespace(x)
        except TypeError:
            raise DeviceMismatchError(
                f"{name}: expected an array, list or number, got {type(x).__name__}") from None
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

    def zeros_like(self, x: Any) -> Any:
        return self.xp.zeros(x.shape, dtype=x.dtype, device=self.device)


def _dtype_name(dtype: Any) -> str:
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None) or str(dtype)
    name = name.removeprefix("torch.")
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    return name


def is_host(x: Any) -> bool:
    return isinstance(x, (list, tuple, int, float, np.ndarray, np.generic))


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
    name, a missing package (naming the pip extra), CuPy without a CUDA device, or a device
    the backend does not have.
    """
    if isinstance(name, Backend):
        if device is not None and not _same_device(device, name.device):
            return get_backend(name.name, device, dtype or name.dtype_name)
        return name.with_dtype(dtype)
    if name is None:
        name = os.environ.get("BPX_BACKEND") or "numpy"
    key = str(name).strip().lower().replace("-", "_")
    if key not in NAMES:
        raise BackendError(f"unknown backend {name!r}; valid names: {', '.join(NAMES)}")
    if key == "auto":
        key = "cupy" if cuda_device_count() > 0 else "numpy"
    dtype_name = _dtype_name(dtype if dtype is not None else DEFAULT_DTYPE)
    _import_backend_module(key)
    xp, dev = _RESOLVERS[key](device, dtype_name)
    int_dtype = xp.__array_namespace_info__().default_dtypes(device=dev)["integral"]
    return Backend(key, xp, dev, getattr(xp, dtype_name), dtype_name, int_dtype)


def _import_backend_module(key: str) -> Any:
    try:
        return importlib.import_module(_MODULES[key])
    except ImportError as err:
        raise BackendError(
            f"backend {key!r} needs the package {_MODULES[key]!r}, which is not installed "
            f"({err}); install it with: {_EXTRAS[key]}") from None


def cuda_device_count() -> int:
    """Number of CUDA devices CuPy can see (0 when CuPy or the driver is missing)."""
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, CUDARuntimeError (no driver), ...
        return 0


def _numpy(device: Any, dtype_name: str) -> tuple[Any, Any]:
    if device not in (None, "cpu"):
        raise BackendError(f"the numpy backend has only the device 'cpu', not {device!r}")
    import array_api_compat.numpy as xp
    return xp, "cpu"


def _array_api_strict(device: Any, dtype_name: str) -> tuple[Any, Any]:
    import array_api_strict as xp
    devices = xp.__array_namespace_info__().devices()
    if device is None:
        return xp, xp.__array_namespace_info__().default_device()
    for d in devices:
        if device is d or str(device) in (str(d), getattr(d, "_device", None)):
            return xp, d
    raise BackendError(f"array_api_strict has no device {device!r}; it has {[str(d) for d in devices]}")


def _torch(device: Any, dtype_name: str) -> tuple[Any, Any]:
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
    elif dev.type not in ("cpu", "meta", "mps"):
        raise BackendError(f"torch: unsupported device {str(dev)!r}; use 'cpu', 'cuda:N' or 'meta'")
    return xp, dev


def _jax(device: Any, dtype_name: str) -> tuple[Any, Any]:
    import jax
    import jax.numpy as xp
    if dtype_name == "float64" and not jax.config.jax_enable_x64:
        # float64 is impossible without x64 mode; enabling it only widens what is allowed.
        jax.config.update("jax_enable_x64", True)
    if device is None:
        return xp, jax.devices()[0]
    if isinstance(device, jax.Device):
        return xp, device
    platform, _, index = str(device).partition(":")
    try:
        found = jax.devices(platform)
        return xp, found[int(index or 0)]
    except (RuntimeError, ValueError, IndexError) as err:
        raise BackendError(f"jax: device {device!r} is not available ({err}); "
                           f"visible devices: {jax.devices()}") from None


def _cupy(device: Any, dtype_name: str) -> tuple[Any, Any]:
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
    return xp, cupy.cuda.Device(index)


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


# ---------------------------------------------------------------------- device -> host
def to_host(x: Any) -> np.ndarray:
    """Copy any backend's array (or a number/list) into a NumPy array. Syncs the device."""
    if isinstance(x, np.ndarray):
        return x
    if is_host(x):
        return np.asarray(x)
    if aac.is_torch_array(x):
        return x.detach().cpu().numpy()
    if aac.is_cupy_array(x):
        return x.get()
    if aac.is_jax_array(x):
        return np.asarray(x)
    xp = aac.array_namespace(x)
    if aac.is_array_api_strict_namespace(xp):
        x = x.to_device(xp.__array_namespace_info__().default_device())
    return np.from_dlpack(x)
