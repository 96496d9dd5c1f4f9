"""A dataset on the device, and what one batch of training does with it.

``fit`` and ``evaluate`` move a dataset to the network's device once (:func:`prepare_data`, which
validates it too) and then address batches by row indices; every form of the training step
(eager, compiled, distributed) is a :data:`RunBatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import BpxValueError, ShapeError
from ..host.arrays import finite_or_raise, is_host, to_host
from ..nn.losses import Loss
from ..nn.network import Network
from .metrics import accuracy_reference

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
            finite = to_host(xp.stack([xp.isfinite(xp.sum(arr)) for arr, _ in device])).tolist()
            for ok, (arr, what) in zip(finite, device, strict=True):
                if not ok:
                    finite_or_raise(to_host(arr), f"{prefix}{what}")
        if not is_host(targets):
            loss.check_device_targets(td, net.output_shape, f"{prefix}targets")
    reference = accuracy_reference(loss, td, backend.xp) if "accuracy" in metrics else None
    return DeviceData(xd, td, reference)


def batch_ranges(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` row ranges of consecutive batches covering ``0..n``."""
    for lo in range(0, n, batch_size):
        yield lo, min(lo + batch_size, n)


