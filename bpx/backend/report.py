"""What each backend is on this machine: installed or not (and why), version, devices.

Used by ``bpx backends``. Nothing here is imported by the training code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError
from .core import BACKENDS, get_backend


@dataclass
class BackendInfo:
    name: str
    available: bool
    version: str = ""
    devices: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    reason: str = ""

    def lines(self) -> list[str]:
        head = f"{self.name:<17} {self.version or '-':<14}"
        if not self.available:
            return [f"{head} unavailable: {self.reason}"]
        out = [f"{head} devices: {', '.join(self.devices) or '-'}"]
        out += [f"{'':<32} {d}" for d in self.details]
        return out


def describe(name: str) -> BackendInfo:
    """Inspect one backend (see :data:`bpx.backend.BACKENDS`)."""
    info = BackendInfo(name, available=False)
    module_name = {"array_api_strict": "array_api_strict"}.get(name, name)
    try:
        module = importlib.import_module(module_name)
        info.version = str(getattr(module, "__version__", ""))
    except ImportError:
        try:
            get_backend(name)
        except BackendError as err:
            info.reason = str(err)
        return info
    try:
        _INSPECTORS[name](module, info)
        info.available = True
    except BackendError as err:
        info.reason = str(err)
    return info


def _numpy(np: Any, info: BackendInfo) -> None:
    info.devices = ["cpu"]
    import array_api_compat

    info.details = [f"array-api-compat {array_api_compat.__version__}"]


def _strict(xp: Any, info: BackendInfo) -> None:
    api = xp.__array_namespace_info__()
    info.devices = [str(d) for d in api.devices()]
    info.details = [f"API version {xp.__array_api_version__}"]


def _torch(torch: Any, info: BackendInfo) -> None:
    info.devices = ["cpu"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info.devices.append(f"cuda:{i} ({props.name}, {props.total_memory / 2**30:.1f} GiB)")
    info.details = [f"CUDA build: {torch.version.cuda or 'none (CPU build)'}",
                    f"CUDA devices visible: {torch.cuda.device_count() if torch.cuda.is_available() else 0}"]


def _jax(jax: Any, info: BackendInfo) -> None:
    info.devices = [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]
    info.details = [f"x64 (float64) enabled: {bool(jax.config.jax_enable_x64)} "
                    "(bpx enables it when a float64 network is created)"]


def _cupy(cupy: Any, info: BackendInfo) -> None:
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
        info.details = [f"CUDA runtime {_cuda_version(runtime.runtimeGetVersion())}, "
                        f"driver {_cuda_version(runtime.driverGetVersion())}"]
    except Exception as err:  # CUDARuntimeError: no driver, no device, ...
        raise BackendError(f"no usable CUDA device: {type(err).__name__}: {err}") from None
    if count == 0:
        raise BackendError("the CUDA runtime reports 0 devices")
    for i in range(count):
        props = runtime.getDeviceProperties(i)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info.devices.append(f"{i} ({name}, {props['totalGlobalMem'] / 2**30:.1f} GiB)")


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


_INSPECTORS = {"numpy": _numpy, "array_api_strict": _strict, "torch": _torch, "jax": _jax, "cupy": _cupy}


def report() -> str:
    """A table of every backend: version, devices, or the reason it cannot be used."""
    lines = [f"{'backend':<17} {'version':<14} status"]
    for name in BACKENDS:
        lines += describe(name).lines()
    return "\n".join(lines)
