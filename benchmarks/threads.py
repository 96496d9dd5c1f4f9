"""Thread and BLAS environment control, applied before NumPy, PyTorch or JAX are imported.

BLAS libraries read their thread count (and OpenBLAS its core type) once, when they are
loaded, so :func:`configure` must run before the first ``import numpy``. It sets the usual
thread variables, pins the process to the first ``N`` CPUs (so libraries that size their pools
from the visible CPUs, such as XLA, are bounded too) and, if a heavy library was already
imported, re-executes the interpreter with the new environment. This module imports nothing
heavy.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Variables that set the thread count of the BLAS / OpenMP runtimes.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")
#: OpenBLAS tuning overrides some environments set; ``OPENBLAS_CORETYPE=Haswell`` makes the
#: generic OpenBLAS of current NumPy wheels pick slower kernels on newer CPUs.
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Other variables worth recording with every result.
REPORTED_VARS = (*THREAD_VARS, *OPENBLAS_TUNING_VARS, "XLA_FLAGS", "BPX_BACKEND", "BPX_BENCH_THREADS")
#: Where the chosen thread count is passed on (to torch setup and to child processes).
THREADS_VAR = "BPX_BENCH_THREADS"
_REEXEC_VAR = "BPX_BENCH_REEXEC"
_HEAVY = ("numpy", "torch", "jax", "cupy")


def configure(threads: int | None, unset_openblas_coretype: bool = False, pin: bool = True) -> None:
    """Set the thread environment for this process (and its children).

    ``threads=None`` leaves the thread count to the libraries (all visible cores).
    ``unset_openblas_coretype`` removes ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``.
    ``pin`` restricts the process to the first ``threads`` CPUs it may run on.
    Re-executes the interpreter if NumPy/PyTorch/JAX were imported before this call.
    """
    wanted: dict[str, str | None] = {}
    if threads is not None:
        if threads < 1:
            raise SystemExit(f"--threads must be at least 1, got {threads}")
        wanted.update({var: str(threads) for var in THREAD_VARS})
        wanted[THREADS_VAR] = str(threads)
    if unset_openblas_coretype:
        wanted.update({var: None for var in OPENBLAS_TUNING_VARS})
    changed = {k: v for k, v in wanted.items() if os.environ.get(k) != v}
    for key, value in changed.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if threads is not None and pin:
        pin_cpus(threads)
    loaded = [m for m in _HEAVY if m in sys.modules]
    if changed and loaded:
        _reexec(loaded)


def pin_cpus(n: int) -> list[int] | None:
    """Restrict this process to the first ``n`` of its allowed CPUs (Linux); returns them."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[:n]
    if len(chosen) < len(allowed):
        os.sched_setaffinity(0, chosen)
    return chosen


def _reexec(loaded: list[str]) -> None:
    if os.environ.get(_REEXEC_VAR):
        raise SystemExit(f"benchmarks: {', '.join(loaded)} still imported before the thread setup after "
                         "re-executing; run the benchmark as `python -m benchmarks.mlp`")
    os.environ[_REEXEC_VAR] = "1"
    print(f"benchmarks: {', '.join(loaded)} was imported before the thread setup; re-executing",
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def configure_torch(torch: Any) -> None:
    """Apply the chosen thread count to an imported ``torch`` (it also reads OMP_NUM_THREADS)."""
    threads = os.environ.get(THREADS_VAR)
    if threads and torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


def allowed_cpus() -> int:
    """Number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def environment() -> dict[str, str | None]:
    """The thread/BLAS variables as they are now (None when unset)."""
    return {var: os.environ.get(var) for var in REPORTED_VARS}
