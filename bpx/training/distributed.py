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
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import Backend
from ..errors import MissingDependencyError
from ..host.arrays import to_host
from ..nn.losses import Loss
from ..nn.network import Network
from ..optim.optimizers import Optimizer
from ..version import DISTRIBUTION
from .step import train_step

if TYPE_CHECKING:
    from .data import DeviceData, RunBatch


ABORT_OUTPUT_GRACE_S = 0.5  # once per failed job: time for the launcher to forward the message


def mpi() -> Any:
    """The ``mpi4py.MPI`` module, or an ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise MissingDependencyError("distributed training needs mpi4py and an MPI runtime: "
                                     f'pip install "{DISTRIBUTION}[mpi]"') from None
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
        # The process manager forwards our output through a pipe; MPI_Abort can reach it first, and
        # then it kills every rank with the message still unread (seen under load with MPICH's Hydra).
        time.sleep(ABORT_OUTPUT_GRACE_S)
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
    def broadcast_parameters(self, net: Network) -> None:
        """Give every rank rank 0's parameter values (a guard: seeded initialisation already agrees)."""
        store = net.store
        host = np.array(to_host(store.values), dtype=np.float64, order="C", copy=True)  # writable: Bcast fills it
        self.comm.Bcast(host, root=0)
        store.replace_values(store.backend.asarray(host, store.backend.master_dtype, copy=True, name="parameters"))

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
        return backend.asarray(out, buffer.dtype)

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


def distributed_batch_function(net: Network, loss: Loss, optimizer: Optimizer, comm: Communicator) -> RunBatch:
    """``run_batch(data, idx)``: this rank's slice of the global batch through :func:`train_step`,
    whose ``reduce`` hook replaces the flat gradient by the weighted sum over all ranks, with the
    batch loss and correct-count in the same buffer (one allreduce per step)."""
    backend = net.backend
    xp, take = backend.xp, backend.take_rows

    def run_batch(data: DeviceData, idx: Any) -> tuple[Any, Any]:
        m = int(idx.shape[0])
        lo, hi = comm.shard(0, m)
        weight = (hi - lo) / m

        def reduce(flat: Any, value: Any, correct: Any) -> tuple[Any, Any, Any]:
            master = backend.master_dtype
            count = backend.zeros((), master) if correct is None else xp.astype(correct, master)
            if weight:  # the buffer is scaled by the weight as a whole; the count must come out unscaled
                scalars = xp.stack([xp.astype(value, backend.master_dtype), count * (1.0 / weight)])
                packed = xp.concat([flat, scalars]) * weight
            else:  # more ranks than rows in this (last) batch: contribute zeros
                packed = backend.zeros((int(flat.shape[0]) + 2,), backend.master_dtype)
            summed = comm.allreduce_sum(packed, backend)
            size = int(flat.shape[0])
            return summed[:size], summed[size], summed[size + 1] if correct is not None else None

        if hi > lo:
            local = idx[lo:hi]
            targets = take(data.targets, local)
            result = train_step(net, take(data.x, local), targets, loss, optimizer,
                                reference=data.reference_rows(local, targets, take),
                                keep_gradients=False, reduce=reduce)
        else:  # an empty slice: no forward pass, zeros into the allreduce, the same update as the others
            master = backend.master_dtype
            flat, value, correct = reduce(backend.zeros((net.store.trainable_size,), master), backend.zeros((), master),
                                          backend.zeros((), master) if data.reference is not None else None)
            net.store.adopt_gradients(flat, False)
            optimizer.update(net.store, flat, scratch=True)
            net.step_count += 1
            return value, correct
        return result.loss, result.correct

    return run_batch
