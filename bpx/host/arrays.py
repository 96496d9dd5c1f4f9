"""Host data in and out: normalising what users pass, and copying device arrays back.

``as_host_array`` turns lists, scalars and NumPy arrays into a well-formed NumPy array (native
byte order, C-contiguous, a real or boolean dtype) or raises a bpx error naming the argument;
``to_host`` copies any backend's array to NumPy (a device synchronisation: never in a hot path).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import array_api_compat as aac
import numpy as np

from ..errors import BpxTypeError, BpxValueError, DeviceMismatchError

HOST_TYPES = (list, tuple, int, float, bool, np.ndarray, np.generic)


def is_host(x: Any) -> bool:
    """True for data that lives on the host: Python lists/tuples/numbers and NumPy arrays."""
    return isinstance(x, HOST_TYPES)


def as_host_array(x: Any, name: str = "input") -> np.ndarray:
    """``x`` (host data) as a NumPy array of a real or boolean dtype, native byte order, C order.

    Raises :class:`BpxValueError` for ragged nested lists and :class:`BpxTypeError` for
    strings, objects, complex numbers or ``None``; the message names ``name``.
    """
    if isinstance(x, np.ndarray):
        host = x
    else:
        try:
            host = np.asarray(x)
        except (ValueError, TypeError) as err:  # ragged nesting: "inhomogeneous shape"
            raise BpxValueError(f"{name}: nested lists of unequal lengths cannot form an array ({err})") from None
    kind = host.dtype.kind
    if kind not in "biuf":
        what = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers",
                "M": "dates", "m": "time spans", "V": "structured records"}.get(kind, f"dtype {host.dtype}")
        raise BpxTypeError(f"{name}: expected real numbers, got {what} (dtype {host.dtype})")
    if host.dtype.byteorder not in "=|" or not host.flags.c_contiguous:
        host = np.ascontiguousarray(host, dtype=host.dtype.newbyteorder("="))
    return host


def overflow_quietly() -> contextlib.AbstractContextManager[Any]:
    """NumPy's overflow and invalid-value warnings off, for a check that may overflow on purpose
    (a finite test by sum, settled exactly when the sum is not finite): a user's large but finite
    data must not draw a warning from bpx's own check. Other libraries do not warn."""
    return np.errstate(over="ignore", invalid="ignore")


def finite_or_raise(host: np.ndarray, name: str) -> None:
    """Raise :class:`BpxValueError` naming ``name`` and the first offending index when a float
    host array holds NaN or ±inf."""
    if host.dtype.kind != "f" or host.size == 0:
        return
    with overflow_quietly():
        total = float(np.add.reduce(host, axis=None))
    if math.isfinite(total):  # fast path: a finite sum has finite terms
        return
    bad = ~np.isfinite(host)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f" at index {index}" if host.ndim else ""
        raise BpxValueError(f"{name} holds a non-finite value ({host[index]}){where}; bpx needs finite numbers")


def to_host(x: Any) -> np.ndarray:
    """Copy any backend's array (or a number/list) into a NumPy array. Synchronises the device.

    Raises :class:`DeviceMismatchError` for arrays on a device that holds no data (PyTorch's
    ``meta``)."""
    if isinstance(x, np.ndarray):
        return x
    if is_host(x):
        return np.asarray(x)
    if aac.is_torch_array(x):
        if x.device.type == "meta":
            raise DeviceMismatchError("this array is on PyTorch's 'meta' device, which holds shapes but no values; "
                                      "build the network on a real device (e.g. backend='torch', device='cpu')")
        x = x.detach().cpu()
        return (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()  # NumPy has no bfloat16
    if aac.is_cupy_array(x):
        return x.get()
    if aac.is_jax_array(x):
        host = np.asarray(x)
        return host.astype(np.float32) if host.dtype.name == "bfloat16" else host
    if not aac.is_array_api_obj(x):
        raise BpxTypeError(f"expected an array, a list or a number, got {type(x).__name__}")
    xp = aac.array_namespace(x)
    if aac.is_array_api_strict_namespace(xp):
        x = x.to_device(xp.__array_namespace_info__().default_device())
    return np.from_dlpack(x)


def element_count(shape: tuple[int, ...]) -> int:
    """The number of elements of ``shape`` as a Python int (never wraps around)."""
    return math.prod(int(d) for d in shape)


def concat_flat(parts: list[np.ndarray]) -> np.ndarray:
    """The host arrays ``parts`` raveled and joined into one float64 vector (empty when no parts)."""
    if not parts:
        return np.zeros(0)
    return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])


#: Floats NumPy does not have: (itemsize, largest finite value).
_FLOAT_LIMITS = {"bfloat16": (2, 3.3895313892515355e38)}


def check_representable(host: np.ndarray, dtype_name: str, name: str) -> None:
    """Raise :class:`BpxValueError` when finite ``host`` values overflow to ±inf in ``dtype_name``."""
    limits = _FLOAT_LIMITS.get(dtype_name)
    if limits is None:
        limits = _FLOAT_LIMITS[dtype_name] = (np.dtype(dtype_name).itemsize, float(np.finfo(dtype_name).max))
    itemsize, limit = limits
    if host.size == 0 or host.dtype.kind != "f" or host.dtype.itemsize <= itemsize:
        return  # a float no wider than the target always fits
    peak = float(np.max(np.abs(host)))
    if peak > float(limit):  # as Python floats: against a float32 limit, NumPy would cast peak to inf (a warning)
        raise BpxValueError(f"{name}: the value {peak:g} overflows to inf in {dtype_name} (largest {limit:g})")


def is_finite_host(host: np.ndarray) -> bool:
    """True when a host array holds no NaN or ±inf (always true for integer arrays)."""
    return host.dtype.kind != "f" or bool(np.all(np.isfinite(host)))


def host_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """float64 zeros of ``shape`` on the host."""
    return np.zeros(shape)
