"""A dataset on the device, and what one batch of training does with it.

``fit`` and ``evaluate`` move a dataset to the network's device once (:func:`prepare_data`, which
validates it too) and then address batches by row indices; every form of the training step
(eager, compiled, distributed) is a :data:`RunBatch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import BpxValueError, ShapeError
from ..host.arrays import finite_or_raise, is_host, overflow_quietly, to_host
from ..nn.losses import Loss
from ..nn.network import Network
from .metrics import accuracy_reference, count_matches

#: ``run_batch(data, idx) -> (loss, correct)``: one training step on the rows ``idx`` of ``data``.
RunBatch = Callable[["DeviceData", Any], tuple[Any, Any]]


@dataclass
class DeviceData:
    """A dataset on the device: inputs ``x`` ``(n, *input_shape)``, prepared ``targets`` and the
    accuracy ``reference`` (``None`` when accuracy is not measured)."""

    x: Any
    targets: Any
    reference: Any

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def reference_rows(self, idx: Any, targets: Any, take: Callable[[Any, Any], Any]) -> Any:
        """The accuracy reference of the rows ``idx``, given their already gathered ``targets``
        (which it is, when the reference is the targets themselves); ``None`` without accuracy."""
        if self.reference is None:
            return None
        return targets if self.reference is self.targets else take(self.reference, idx)


def prepare_data(net: Network, loss: Loss, x: Any, targets: Any, metrics: list[str], prefix: str = "") -> DeviceData:
    """Move ``(x, targets)`` to the device once and validate them: shapes, dtypes, finite inputs
    and valid targets (host data on the host; device data with one read-back)."""
    backend = net.backend
    xd = net.prepare_inputs(x, name=f"{prefix}x")
    td = loss.prepare_targets(targets, backend, net.output_shape, name=f"{prefix}targets")
    if td.shape[0] != xd.shape[0]:
        raise ShapeError(f"{prefix}x has {xd.shape[0]} samples but {prefix}targets has {td.shape[0]}")
    if xd.shape[0] == 0:
        raise BpxValueError(f"{prefix}x has 0 samples: there is nothing to train on or evaluate")
    if backend.holds_data:
        xp = backend.xp
        device = [(arr, what) for given, arr, what in ((x, xd, "x"), (targets, td, "targets"))
                  if not is_host(given) and xp.isdtype(arr.dtype, "real floating")]
        if device:  # one read-back for both; the index of a bad value only when there is one
            # A finite sum has finite terms: one reduction (PyTorch's isfinite on the CPU costs 30×
            # more). A sum that is not finite (a bad value, or finite values that overflowed) is
            # settled exactly on the host.
            with overflow_quietly():  # NumPy (and array-api-strict) would warn about the overflow
                finite = to_host(xp.stack([xp.isfinite(xp.sum(arr)) for arr, _ in device])).tolist()
            for ok, (arr, what) in zip(finite, device, strict=True):
                if not ok:
                    finite_or_raise(to_host(arr), f"{prefix}{what}")
        if not is_host(targets):
            loss.check_device_targets(td, net.output_shape, f"{prefix}targets")
    reference = accuracy_reference(loss, td, backend.xp) if "accuracy" in metrics else None
    return DeviceData(xd, td, reference)


#: ``fit``'s eager loop gathers up to this many batches with one ``take`` per array ...
CHUNK_BATCHES = 16
#: ... holding at most about this many bytes of inputs (the chunk stays in the CPU's caches).
CHUNK_BYTES = 8 * 2**20


def chunk_batches(data: DeviceData, batch_size: int) -> int:
    """How many batches of ``batch_size`` rows of ``data`` :func:`gather_chunk` takes at once."""
    row_bytes = 4 * max(1, math.prod(data.x.shape[1:]))
    return max(1, min(CHUNK_BATCHES, CHUNK_BYTES // (row_bytes * batch_size)))


@dataclass
class Chunk:
    """Consecutive batches gathered at once: per-batch ``inputs`` (views of one gathered array),
    ``targets`` as the loss takes them (:meth:`Loss.batch_targets`) and the accuracy ``reference``
    of all their rows (``None`` when accuracy is not measured)."""

    inputs: list[Any]
    targets: list[Any]
    reference: Any

    def count_correct(self, predicted: list[Any], xp: Any) -> Any:
        """Correct predictions (0-d) of the first ``len(predicted)`` batches, given each batch's
        :func:`~bpx.training.metrics.predictions`."""
        joined = predicted[0] if len(predicted) == 1 else xp.concat(predicted, axis=0)
        rows = joined.shape[0]
        reference = self.reference if rows == self.reference.shape[0] else self.reference[:rows, ...]
        return count_matches(joined, reference, xp)


def gather_chunk(net: Network, loss: Loss, data: DeviceData, idx: Any, batches: int) -> Chunk:
    """The rows ``idx`` of ``data`` as ``batches`` equal batches: one gather per array for all of
    them, so the per-batch cost of moving data (and of the loss's target conversion) is a fraction
    of an operation."""
    backend = net.backend
    take = backend.take_rows
    x, targets = take(data.x, idx), take(data.targets, idx)
    return Chunk(backend.split_batches(x, batches), loss.batch_targets(targets, batches, backend, net.output_shape),
                 data.reference_rows(idx, targets, take))


def batch_ranges(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` row ranges of consecutive batches covering ``0..n``."""
    for lo in range(0, n, batch_size):
        yield lo, min(lo + batch_size, n)


