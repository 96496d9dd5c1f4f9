"""Test helpers: dtype-aware closeness checks and the (backend, device, dtype) parametrisation.

``assert_close`` takes arrays of any backend, copies them to the host and compares them with
tolerances derived from the dtype's machine epsilon (float64 tight, float32 looser).
``backend_params`` yields one pytest parameter per backend/device/dtype combination, skipping
with the reason what is not installed or has no device (CuPy without a GPU is a skip).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import BACKENDS, Backend, get_backend
from ..errors import BackendError, BpxValueError
from ..host.arrays import to_host

#: Tolerances are ``TOLERANCE_ULPS × eps`` of the dtype: 2.3e-13 for float64, 1.2e-4 for float32.
TOLERANCE_ULPS = 1024
#: The low-precision dtypes of mixed precision: their eps, and fewer ulps (their eps is large).
LOW_PRECISION = {"float16": (2.0**-10, 16), "bfloat16": (2.0**-7, 16)}


def tolerance(dtype: Any, factor: float = 1.0) -> float:
    """Default relative (and absolute) tolerance for ``dtype``: ``factor × 1024 × eps`` (float32,
    float64), ``factor × 16 × eps`` (float16: 0.016, bfloat16: 0.125)."""
    name = getattr(dtype, "name", None) or str(dtype).removeprefix("torch.")
    if name in LOW_PRECISION:
        eps, ulps = LOW_PRECISION[name]
        return float(factor * ulps * eps)
    return float(factor * TOLERANCE_ULPS * np.finfo(np.dtype(name)).eps)


def assert_close(actual: Any, desired: Any, *, rtol: float | None = None, atol: float | None = None,
                 dtype: Any = None, factor: float = 1.0, err_msg: str = "") -> None:
    """Assert ``|actual − desired| ≤ atol + rtol·|desired|`` element-wise, after copying both to
    the host. Default tolerances come from :func:`tolerance` of ``dtype`` (else the dtype of
    ``actual`` when it is a float array, else float64), scaled by ``factor``. Shapes must match.
    """
    a, d = to_host(actual), to_host(desired)
    if dtype is None:
        dtype = a.dtype if a.dtype.kind == "f" else np.float64
    default = tolerance(dtype, factor)
    rtol = default if rtol is None else rtol
    atol = default if atol is None else atol
    np.testing.assert_allclose(a.astype(np.float64), np.asarray(d, dtype=np.float64), rtol=rtol, atol=atol,
                               err_msg=f"{err_msg} (dtype {np.dtype(dtype).name}, rtol {rtol:g}, atol {atol:g})")


@dataclass(frozen=True)
class BackendConfig:
    """One combination to test: backend name, device (``None``: the default) and dtype name."""

    name: str
    device: Any
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.name}-{self.device or 'default'}-{self.dtype}"

    def backend(self) -> Backend:
        return get_backend(self.name, self.device, self.dtype)

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy" or "cuda" in str(self.device)


#: Every combination the suite knows about. array-api-strict's "device1" catches every array
#: created without ``device=``; the GPU rows skip where there is no CUDA device.
ALL_CONFIGS = tuple(
    BackendConfig(name, device, dtype)
    for name, device in (("numpy", None), ("array_api_strict", None), ("array_api_strict", "device1"),
                         ("torch", "cpu"), ("jax", None), ("cupy", None), ("torch", "cuda"))
    for dtype in ("float64", "float32")
)


def selected_backends() -> set[str] | None:
    """The backends named by ``$BPX_TEST_BACKENDS`` (comma-separated), or ``None`` for all.
    Raises :class:`BpxValueError` for a name that is not a backend (a typo would skip everything)."""
    selected = os.environ.get("BPX_TEST_BACKENDS")
    if not selected:
        return None
    names = {s.strip() for s in selected.split(",") if s.strip()}
    unknown = sorted(names - set(BACKENDS))
    if unknown or not names:
        raise BpxValueError(f"BPX_TEST_BACKENDS={selected!r} names unknown backends {unknown}; valid: "
                            f"{', '.join(BACKENDS)}")
    return names


def availability(config: BackendConfig) -> str | None:
    """``None`` when the combination can run here, else the reason it cannot."""
    selected = selected_backends()
    if selected is not None and config.name not in selected:
        return f"not selected by BPX_TEST_BACKENDS={os.environ.get('BPX_TEST_BACKENDS')}"
    try:
        config.backend()
    except BackendError as err:
        return str(err)
    return None


def backend_params(dtypes: tuple[str, ...] = ("float64", "float32"), gpu: bool = True) -> list[Any]:
    """``pytest.param(BackendConfig, id=..., marks=...)`` for every combination with a dtype in
    ``dtypes``; unavailable ones carry a skip mark with the reason, GPU ones the ``gpu`` mark."""
    import pytest

    params = []
    for config in ALL_CONFIGS:
        if config.dtype not in dtypes or (config.is_gpu and not gpu):
            continue
        marks = [pytest.mark.gpu] if config.is_gpu else []
        reason = availability(config)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(config, id=config.id, marks=marks))
    return params
