"""CPU threads: ``--threads N`` and the default under ``mpiexec``.

Each MPI rank is a separate process; if every rank lets its BLAS use every core, the ranks of one
machine oversubscribe the cores and slow each other down many times over. So under an MPI launcher
(detected from its environment variables) each rank defaults to its share of the machine's cores:
``cores // ranks on this machine``, at least 1. An explicit ``--threads N`` or a thread variable
set by the user (``OMP_NUM_THREADS``, ...) wins.

NumPy is already imported (and its BLAS loaded) when the command line is parsed, so environment
variables alone would come too late: the limit is applied to the loaded libraries with
``threadpoolctl``, to PyTorch with ``torch.set_num_threads``, and exported in the environment for
libraries loaded later.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

#: Thread-count variables a user may set; any of them set means "the user chose".
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
#: World size set by MPI launchers: Open MPI, MPICH/Intel MPI (Hydra, PMI), PMIx, MVAPICH.
MPI_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
#: Number of ranks on this machine: MPICH/Intel MPI, Open MPI, MVAPICH.
MPI_LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


def _int_variable(names: tuple[str, ...], environ: Mapping[str, str]) -> int | None:
    for name in names:
        text = environ.get(name, "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
    return None


def mpi_world_size(environ: Mapping[str, str] = os.environ) -> int | None:
    """The number of ranks when launched by ``mpiexec``/``mpirun``/``srun --mpi``, else ``None``."""
    return _int_variable(MPI_SIZE_VARIABLES, environ)


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadChoice:
    """How many threads to use (``None``: leave the libraries alone) and why, for the header."""

    count: int | None
    reason: str


def choose_threads(requested: int | None, environ: Mapping[str, str] = os.environ) -> ThreadChoice:
    """``--threads`` if given; else the user's thread variable; else under MPI the cores divided
    among this machine's ranks; else the libraries' defaults."""
    if requested is not None:
        return ThreadChoice(requested, "--threads")
    for name in THREAD_VARIABLES:
        if environ.get(name, "").strip():
            return ThreadChoice(None, f"${name}")
    size = mpi_world_size(environ)
    if size is not None and size > 1:
        local = _int_variable(MPI_LOCAL_SIZE_VARIABLES, environ) or size
        cores = cpu_count()
        return ThreadChoice(max(1, cores // local), f"{local} MPI ranks share {cores} cores here")
    return ThreadChoice(None, "default")


def export_threads(choice: ThreadChoice) -> None:
    """Put the count in the environment, for thread pools created after this point (OpenMP
    runtimes loaded with a backend, ...). Call before the backend is imported."""
    if choice.count is not None:
        for name in THREAD_VARIABLES:
            os.environ[name] = str(choice.count)


def apply_threads(choice: ThreadChoice) -> None:
    """Limit the thread pools already loaded (NumPy's BLAS, OpenMP) and PyTorch's."""
    if choice.count is None:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=choice.count)  # stays in force: not used as a context manager
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(choice.count)


def describe_threads(choice: ThreadChoice) -> str:
    """The threads in force, e.g. ``1 BLAS thread (2 MPI ranks share 2 cores here)``."""
    counts = sorted(set(blas_thread_counts().values()))
    torch = sys.modules.get("torch")
    if torch is not None:
        counts = sorted({*counts, int(torch.get_num_threads())})
    if not counts:
        text = "threads: the libraries' defaults"
    else:
        number = "/".join(map(str, counts))
        text = f"{number} thread{'s' if counts != [1] else ''}"
    return text if choice.reason == "default" else f"{text} ({choice.reason})"


def blas_thread_counts() -> dict[str, int]:
    """``{"openblas 0.3.31": 2, ...}``: the BLAS and OpenMP libraries loaded in this process and
    their thread counts (empty when threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {f"{info.get('internal_api')} {info.get('version') or ''}".strip(): int(info.get("num_threads", 0))
            for info in threadpool_info()}
