"""Data-parallel training on MPI (``mpi4py``), the way ChainerMN and Horovod do it.

Every rank holds a replica of the network. Each global batch is split into contiguous slices,
one per rank (rank r takes rows ``[r·m/size, (r+1)·m/size)`` of a batch of m rows); every rank
computes the gradient of its slice, and one allreduce per step sums all gradients — packed into
a single contiguous buffer, each weighted by its slice's share ``n_r/m`` — so every replica
receives exactly the single-process gradient of the global batch and applies the same update.
The batch loss and the number of correct predictions travel in the same buffer.

Transports: NumPy arrays go straight into MPI buffers; CuPy arrays use NCCL (``cupy.cuda.nccl``)
when it is available, else they are staged through the host (one transfer each way per step);
the other backends are staged through the host.

Faults: an exception on any rank prints that rank's traceback once and aborts the whole job
(``MPI_Abort``) instead of leaving the others waiting; a rank that does not reach bpx's
start-up handshake within ``join_timeout`` seconds makes the others abort with a time-out message.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from .backend import Backend, to_host


def mpi() -> Any:
    """The ``mpi4py.MPI`` module, or an ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError('distributed training needs mpi4py and an MPI runtime: pip install "bpx[mpi]"') from None
    return MPI


class Communicator:
    """The ranks taking part in data-parallel training (default: ``MPI.COMM_WORLD``).

    ``join_timeout``: seconds to wait for every rank at start-up before aborting the job.
    """

    def __init__(self, comm: Any = None, join_timeout: float = 120.0) -> None:
        self.MPI = mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._nccl: Any = None
        self._join(join_timeout)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _join(self, timeout: float) -> None:
        request = self.comm.Ibarrier()
        deadline = time.monotonic() + timeout
        while not request.Test():
            if time.monotonic() > deadline:
                self.abort(f"timed out after {timeout:g} s waiting for all {self.size} ranks to join "
                           "bpx.distributed (a rank failed or is stuck before training; see its output)")
            time.sleep(0.005)

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` once (from this rank) and end every rank of the job."""
        print(f"bpx rank {self.rank}/{self.size}: {message}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        self.comm.Abort(code)
        os._exit(code)  # MPI_Abort may return before the process manager ends this process

    @contextlib.contextmanager
    def abort_on_error(self) -> Iterator[None]:
        """Any exception inside aborts the whole job with this rank's traceback, never a hang."""
        try:
            yield
        except Exception:
            self.abort("error; aborting all ranks\n" + traceback.format_exc().rstrip())

    # ------------------------------------------------------------------ small host collectives
    def shard(self, lo: int, hi: int) -> tuple[int, int]:
        """This rank's contiguous part of the range ``[lo, hi)``."""
        m = hi - lo
        return lo + self.rank * m // self.size, lo + (self.rank + 1) * m // self.size

    def broadcast_object(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)

    def sum_host(self, values: list[float]) -> list[float]:
        """Element-wise sum of small host lists across ranks."""
        out = np.empty(len(values), dtype=np.float64)
        self.comm.Allreduce(np.asarray(values, dtype=np.float64), out, op=self.MPI.SUM)
        return out.tolist()

    def any(self, flag: bool) -> bool:
        return bool(self.comm.allreduce(int(flag), op=self.MPI.MAX))

    # ------------------------------------------------------------------ device buffers
    def broadcast_parameters(self, params: list[Any], backend: Backend) -> None:
        """Give every rank rank 0's parameter values (a guard: seeded initialisation already agrees)."""
        host = np.concatenate([to_host(p.value).astype(np.float64).ravel() for p in params])
        self.comm.Bcast(host, root=0)
        offset = 0
        for p in params:
            size = int(np.prod(p.shape))
            p.value = backend.asarray(host[offset:offset + size].reshape(p.shape), backend.dtype, copy=True)
            offset += size

    def allreduce_sum(self, buffer: Any, backend: Backend) -> Any:
        """Sum a 1-D device buffer over all ranks; returns the result on the same device."""
        if backend.name == "numpy":
            out = np.empty_like(buffer)
            self.comm.Allreduce(buffer, out, op=self.MPI.SUM)
            return out
        if backend.name == "cupy" and self._nccl_communicator() is not None:
            return self._nccl_allreduce(buffer)
        host = np.ascontiguousarray(to_host(buffer))
        out = np.empty_like(host)
        self.comm.Allreduce(host, out, op=self.MPI.SUM)
        return backend.asarray(out, backend.dtype)

    def _nccl_communicator(self) -> Any:
        """A NCCL communicator over the same ranks (``False`` when NCCL is unavailable)."""
        if self._nccl is None:
            try:
                from cupy.cuda import nccl

                uid = self.broadcast_object(nccl.get_unique_id() if self.is_main else None)
                self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
            except Exception:  # no NCCL in this CuPy build: stage through the host
                self._nccl = False
        return self._nccl or None

    def _nccl_allreduce(self, buffer: Any) -> Any:
        import cupy
        from cupy.cuda import nccl

        dtype = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}[buffer.dtype]
        out = cupy.empty_like(buffer)
        stream = cupy.cuda.get_current_stream()
        self._nccl.allReduce(buffer.data.ptr, out.data.ptr, buffer.size, dtype, nccl.NCCL_SUM, stream.ptr)
        return out


class GradientAverager:
    """Packs a replica's weighted gradients (and the batch metrics) into one buffer, allreduces
    it once, and unpacks the global gradient into every trainable parameter's ``grad``."""

    def __init__(self, comm: Communicator, params: list[Any], backend: Backend) -> None:
        self.comm, self.backend = comm, backend
        self.params = [p for p in params if p.trainable]
        self.shapes = [p.shape for p in self.params]
        self.sizes = [int(np.prod(s)) for s in self.shapes]

    def __call__(self, weight: float, loss: Any, correct: Any) -> tuple[Any, Any]:
        """Replace each ``grad`` by Σ_ranks weight_r·grad_r; return the reduced ``(loss, correct)``
        where the loss is weighted like the gradients and ``correct`` is summed."""
        xp, dtype = self.backend.xp, self.backend.dtype
        parts = [xp.reshape(p.grad, (-1,)) for p in self.params]
        if weight:  # the buffer is scaled by weight as a whole; the count must come out unscaled
            scalars = xp.stack([xp.astype(loss, dtype), xp.astype(correct, dtype) * (1.0 / weight)])
        else:
            scalars = xp.zeros((2,), dtype=dtype, device=self.backend.device)
        buffer = xp.concat([*parts, scalars]) * weight
        reduced = self.comm.allreduce_sum(buffer, self.backend)
        offset = 0
        for p, shape, size in zip(self.params, self.shapes, self.sizes, strict=True):
            p.grad = xp.reshape(reduced[offset:offset + size], shape)
            offset += size
        return reduced[offset], reduced[offset + 1]

    def zero_gradients(self) -> None:
        """For a rank whose slice of the batch is empty: contribute zeros."""
        for p in self.params:
            p.grad = self.backend.zeros_like(p.value)
