"""The per-batch step of ``fit``: ``step(data, idx) -> (loss, correct)`` for the batch of rows
``idx`` (a device index array), as 0-d device arrays (``correct`` is ``None`` without accuracy).

Three forms of the same forward/backward/update: eager (``Sequential._train_step``), compiled
with ``jax.jit`` (:mod:`bpx.compile`), and data-parallel over MPI ranks (:mod:`bpx.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .losses import Loss
from .metrics import correct_count
from .optim import Optimizer

if TYPE_CHECKING:
    from .distributed import Communicator
    from .network import Sequential
    from .train import _Data

Step = Callable[["_Data", Any], tuple[Any, Any]]


def make_step(net: Sequential, loss: Loss, optimizer: Optimizer, compile: bool = False,
              comm: Communicator | None = None) -> Step:
    """The step ``fit`` runs for each minibatch (see the module docstring)."""
    xp = net.xp
    if comm is not None:
        if compile:
            raise ValueError("compile=True and distributed training cannot be combined yet")
        return _distributed_step(net, loss, optimizer, comm)
    if compile:
        from .compile import CompiledStep

        return CompiledStep(net, loss, optimizer)

    def step(data: _Data, idx: Any) -> tuple[Any, Any]:
        value, y = net._train_step(xp.take(data.x, idx, axis=0), xp.take(data.t, idx, axis=0), loss, optimizer,
                                   reuse_grads=True)
        if data.labels is None:
            return value, None
        return value, correct_count(y, xp.take(data.labels, idx, axis=0), xp)

    return step


def _distributed_step(net: Sequential, loss: Loss, optimizer: Optimizer, comm: Communicator) -> Step:
    from .distributed import GradientAverager

    xp, backend = net.xp, net.backend
    params = net.parameters()
    averager = GradientAverager(comm, params, backend)

    def step(data: _Data, idx: Any) -> tuple[Any, Any]:
        m = int(idx.shape[0])
        lo, hi = comm.shard(0, m)
        if hi > lo:
            local = idx[lo:hi]
            value, y = net._gradients(xp.take(data.x, local, axis=0), xp.take(data.t, local, axis=0), loss)
            correct = (correct_count(y, xp.take(data.labels, local, axis=0), xp) if data.labels is not None
                       else xp.zeros((), dtype=backend.dtype, device=backend.device))
        else:  # more ranks than rows in this (last) batch
            averager.zero_gradients()
            value = correct = xp.zeros((), dtype=backend.dtype, device=backend.device)
        value, correct = averager((hi - lo) / m, value, correct)
        optimizer.step(params, reuse_grads=True)
        return value, correct if data.labels is not None else None

    return step
