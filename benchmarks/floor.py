"""The GEMM floor: how long an epoch's matrix products alone take at the best measured rate.

The harness times float32 GEMMs of exactly the shapes (and memory layouts: ``xᵀ`` and ``Wᵀ``
are transposed views) that a training step uses, with the same library and thread settings,
takes the best GFLOP/s among them, and divides the epoch's GEMM FLOPs by it. No
implementation can beat that floor without doing less arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .workload import Gemm, epoch_flops, step_gemms


@dataclass
class FloorResult:
    """The best GEMM rate, the FLOPs of an epoch and the floor in seconds, with per-shape rates."""

    library: str
    device: str
    best_gflops: float
    best_shape: str
    epoch_gflop: float
    floor_seconds: float
    shape_floor_seconds: float
    shapes: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def measure_floor(sizes: tuple[int, ...], batch: int, n: int, library: str = "numpy", device: str | None = None,
                  min_time: float = 0.05, repeats: int = 5) -> FloorResult:
    """Time each GEMM of a step (best of ``repeats`` runs of at least ``min_time`` seconds)."""
    make, sync = _library_ops(library, device)
    rng = np.random.default_rng(0)
    shapes = []
    best = (0.0, "")
    per_step_seconds = 0.0
    for gemm in step_gemms(sizes, batch):
        a, b = _operands(gemm, rng)
        mm = make(a, b)
        seconds = _best_time(mm, sync, min_time, repeats)
        rate = gemm.flops / seconds / 1e9
        label = _shape_label(gemm)
        shapes.append({"role": gemm.role, "layer": gemm.layer, "shape": label, "gflops": rate,
                       "seconds": seconds})
        per_step_seconds += seconds
        if rate > best[0]:
            best = (rate, f"{gemm.role} {label}")
    flops = epoch_flops(sizes, n)
    steps = n / batch
    return FloorResult(library, str(device or "cpu"), best[0], best[1], flops / 1e9, flops / (best[0] * 1e9),
                       per_step_seconds * steps, shapes)


def _shape_label(gemm: Gemm) -> str:
    return f"({gemm.m},{gemm.k})@({gemm.k},{gemm.n})"


def _operands(gemm: Gemm, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Host operands laid out as in the step: ``x@W`` plain; ``xᵀ@g`` with ``x`` stored
    ``(batch, in)``; ``g@Wᵀ`` with ``W`` stored ``(in, out)``."""
    def rand(*shape: int) -> np.ndarray:
        return rng.random(shape, dtype=np.float32)

    if gemm.role.startswith("grad_W"):
        return rand(gemm.k, gemm.m).T, rand(gemm.k, gemm.n)
    if gemm.role.startswith("grad_x"):
        return rand(gemm.m, gemm.k), rand(gemm.n, gemm.k).T
    return rand(gemm.m, gemm.k), rand(gemm.k, gemm.n)


def _best_time(mm: Callable[[], Any], sync: Callable[[Any], None], min_time: float, repeats: int) -> float:
    sync(mm())  # warm up (and compile, for JAX)
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            out = mm()
        sync(out)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or loops >= 1 << 16:
            break
        loops *= 2
    best = elapsed / loops
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(loops):
            out = mm()
        sync(out)
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def _library_ops(library: str, device: str | None) -> tuple[Callable[[np.ndarray, np.ndarray], Callable[[], Any]],
                                                            Callable[[Any], None]]:
    """``make(a, b)`` returning a zero-argument GEMM on the library's device, and ``sync``."""
    if library == "numpy":
        return (lambda a, b: lambda: a @ b), (lambda out: None)
    if library == "torch":
        import torch

        from .threads import configure_torch

        configure_torch(torch)
        dev = torch.device(device or "cpu")

        def make_torch(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
            # keep the transposed layouts: move the stored arrays, then transpose on the device
            ta = torch.from_numpy(np.ascontiguousarray(a.T)).to(dev).T if not a.flags.c_contiguous \
                else torch.from_numpy(a).to(dev)
            tb = torch.from_numpy(np.ascontiguousarray(b.T)).to(dev).T if not b.flags.c_contiguous \
                else torch.from_numpy(b).to(dev)
            return lambda: ta @ tb

        def sync_torch(out: Any) -> None:
            if out.device.type == "cuda":
                torch.cuda.synchronize(out.device)

        return make_torch, sync_torch
    if library == "cupy":
        import cupy

        def make_cupy(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
            with cupy.cuda.Device(int(device or 0)):
                ca = cupy.asarray(np.ascontiguousarray(a.T)).T if not a.flags.c_contiguous else cupy.asarray(a)
                cb = cupy.asarray(np.ascontiguousarray(b.T)).T if not b.flags.c_contiguous else cupy.asarray(b)
            return lambda: ca @ cb

        return make_cupy, lambda out: out.device.synchronize()
    if library == "jax":
        import jax

        from .peers import _jax_device

        dev = _jax_device(jax, device)
        matmul = jax.jit(lambda x, y: x @ y)

        def make_jax(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
            ja, jb = jax.device_put(np.ascontiguousarray(a), dev), jax.device_put(np.ascontiguousarray(b), dev)
            return lambda: matmul(ja, jb)

        return make_jax, lambda out: out.block_until_ready()
    raise ValueError(f"no GEMM floor for library {library!r}")
