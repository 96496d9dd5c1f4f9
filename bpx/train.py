"""The training loop: ``fit``, ``evaluate`` and ``predict``.

The dataset is moved to the network's device once per call. Each epoch draws a permutation on
the host from the seed (same seed → same batches on every backend), slices minibatches on the
device, and keeps every batch's loss and number of correct predictions as 0-d device arrays.
They are read back once per epoch (or every ``check_every`` batches): no host synchronisation
per batch. A non-finite loss stops training with an error naming the epoch and batch, after
restoring the weights and optimizer state of the start of that epoch (or of the last check).
``Ctrl-C`` stops at the next batch boundary and keeps the network and the history.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import init as initializers
from .backend import is_host, to_host
from .callbacks import Callback
from .losses import Loss, SoftmaxCrossEntropy, check_labels
from .metrics import accuracy_labels, correct_count
from .optim import Optimizer
from .schedules import Schedule
from .steps import make_step

if TYPE_CHECKING:
    from .distributed import Communicator
    from .network import Sequential


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """Per-epoch metrics (host floats): ``history["loss"]``, ``["accuracy"]``, ``["val_loss"]``,
    ``["val_accuracy"]``, ``["lr"]``, ``["time"]`` (seconds), and every batch's loss in
    ``batch_losses``. ``interrupted`` is true after Ctrl-C."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    batch_losses: list[float] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    @property
    def epochs(self) -> int:
        return len(self.metrics.get("loss", []))

    def last(self) -> dict[str, float]:
        """The last epoch's metrics."""
        return {k: v[-1] for k, v in self.metrics.items() if v}

    def append(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.metrics.setdefault(key, []).append(value)


@dataclass
class _Data:
    """A dataset on the device: inputs ``x`` ``(n, d)``, prepared targets ``t`` and the labels
    accuracy is measured against (``None``: no accuracy)."""

    x: Any
    t: Any
    labels: Any

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


class Trainer:
    """Runs ``fit`` for one network, loss and optimizer (see :meth:`Sequential.fit`)."""

    def __init__(self, net: Sequential, loss: str | Loss, optimizer: str | Optimizer,
                 comm: Communicator | None = None) -> None:
        self.net = net
        self.loss = net.resolve_loss(loss)
        self.optimizer = net.resolve_optimizer(optimizer)
        self.comm = comm
        self.history = History()
        self.stop = False
        self._interrupted = False  # set by Ctrl-C
        self._stopping = False  # the loop's decision (across MPI ranks: agreed by all)

    @property
    def is_main(self) -> bool:
        """True on the process that prints and saves (rank 0, or the only process)."""
        return self.comm is None or self.comm.is_main

    # ------------------------------------------------------------------ data
    def prepare(self, x: Any, y: Any, name: str = "") -> _Data:
        """Move ``(x, y)`` to the device once and validate them (labels checked once, here)."""
        net, xp = self.net, self.net.xp
        xd = net.prepare_inputs(x, name=f"{name}x")
        td = self.loss.prepare_targets(y, net.backend, net.out_features, name=f"{name}y")
        if td.shape[0] != xd.shape[0]:
            raise ValueError(f"{name}x has {xd.shape[0]} samples but {name}y has {td.shape[0]}")
        if isinstance(self.loss, SoftmaxCrossEntropy) and td.ndim == 1 and not is_host(y):
            check_labels(td, net.out_features, f"{name}y")  # one read-back; host labels were checked already
        return _Data(xd, td, accuracy_labels(td, self.loss, xp))

    # ------------------------------------------------------------------ fit
    def fit(self, x: Any, y: Any, *, epochs: int, batch_size: int, validation_data: tuple[Any, Any] | None,
            shuffle: bool, seed: int | None, callbacks: Sequence[Callback], lr_schedule: Schedule | None,
            check_every: int | None, verbose: int, compile: bool = False) -> History:
        if self.comm is None:
            return self._fit(x, y, epochs, batch_size, validation_data, shuffle, seed, callbacks, lr_schedule,
                             check_every, verbose, compile)
        with self.comm.abort_on_error():
            return self._fit(x, y, epochs, batch_size, validation_data, shuffle, seed, callbacks, lr_schedule,
                             check_every, verbose, compile)

    def _fit(self, x: Any, y: Any, epochs: int, batch_size: int, validation_data: tuple[Any, Any] | None,
             shuffle: bool, seed: int | None, callbacks: Sequence[Callback], lr_schedule: Schedule | None,
             check_every: int | None, verbose: int, compile: bool) -> History:
        _check_positive(epochs=epochs, batch_size=batch_size, check_every=check_every or 1)
        self._step = make_step(self.net, self.loss, self.optimizer, compile, self.comm)
        train = self.prepare(x, y)
        val = self.prepare(*validation_data, name="validation ") if validation_data is not None else None
        if self.comm is not None:  # identical replicas and batch order on every rank
            self.comm.broadcast_parameters(self.net.parameters(), self.net.backend)
            seed = self.comm.broadcast_object(seed if seed is not None else initializers.fresh_seed())
            verbose = verbose if self.comm.is_main else 0
        rng = initializers.make_rng(seed)
        base_lr = self.optimizer.lr
        for cb in callbacks:
            cb.on_train_begin(self)
        try:
            with _stop_on_sigint(self):
                for epoch in range(epochs):
                    if lr_schedule is not None:
                        self.optimizer.lr = lr_schedule(epoch, base_lr)
                    start = time.perf_counter()
                    logs = self._epoch(train, rng, epoch, epochs, batch_size, shuffle, check_every, verbose)
                    if val is not None and not self._stopping:
                        logs.update({f"val_{k}": v for k, v in self._evaluate(val, 4 * batch_size).items()})
                    logs["lr"] = self.optimizer.lr
                    logs["time"] = time.perf_counter() - start
                    self.history.append(logs)
                    if verbose:
                        _print_epoch(epoch, epochs, logs)
                    if self._stopping:
                        break
                    for cb in callbacks:
                        cb.on_epoch_end(self, epoch, logs)
                    if self.stop:
                        self.history.stopped_early = True
                        break
        finally:
            for cb in callbacks:
                cb.on_train_end(self)
        self.history.interrupted = self._stopping
        return self.history

    def _epoch(self, data: _Data, rng: Any, epoch: int, epochs: int, batch_size: int, shuffle: bool,
               check_every: int | None, verbose: int) -> dict[str, float]:
        net, xp, optimizer = self.net, self.net.xp, self.optimizer
        n = data.n
        perm = net.backend.asarray(initializers.batch_order(rng, n, shuffle), net.backend.int_dtype)
        n_batches = math.ceil(n / batch_size)
        interval = check_every or n_batches
        snapshot = _snapshot(net, optimizer)
        losses: list[Any] = []
        corrects: list[Any] = []
        sizes: list[int] = []
        read_losses: list[float] = []
        read_corrects: list[float] = []
        bar = _progress(n_batches, f"epoch {epoch + 1}/{epochs}", verbose)
        for b in range(n_batches):
            idx = perm[b * batch_size:min((b + 1) * batch_size, n)]
            value, correct = self._step(data, idx)
            losses.append(value)
            sizes.append(int(idx.shape[0]))
            if correct is not None:
                corrects.append(correct)
            if bar is not None:
                bar.update(1)
            at_check = (b + 1) % interval == 0 or b + 1 == n_batches
            stop = self._stop_requested(at_check)
            if at_check or stop:
                start = len(read_losses)
                read_losses += _read(losses[start:], xp)
                read_corrects += _read(corrects[start:], xp)
                _check_finite(read_losses, start, epoch, snapshot, net, optimizer)
                snapshot = _snapshot(net, optimizer) if b + 1 < n_batches else snapshot
            if stop:
                self._stopping = True
                break
        if bar is not None:
            bar.close()
        done = sum(sizes)
        self.history.batch_losses += read_losses
        logs = {"loss": sum(v * s for v, s in zip(read_losses, sizes, strict=True)) / done}
        if data.labels is not None:
            logs["accuracy"] = sum(read_corrects) / done
        return logs

    def _stop_requested(self, at_check: bool) -> bool:
        """Ctrl-C takes effect after the current batch; across MPI ranks, at the next check
        point, where all ranks agree (so none is left waiting in a collective)."""
        if self.comm is None:
            return self._interrupted
        return at_check and self.comm.any(self._interrupted)

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x: Any, y: Any, batch_size: int) -> dict[str, float]:
        _check_positive(batch_size=batch_size)
        return self._evaluate(self.prepare(x, y), batch_size)

    def _evaluate(self, data: _Data, batch_size: int) -> dict[str, float]:
        """Loss and accuracy over ``data`` (each MPI rank evaluates its share; totals are summed)."""
        net, xp, loss, backend = self.net, self.net.xp, self.loss, self.net.backend
        total = xp.zeros((), dtype=backend.dtype, device=backend.device)
        correct = xp.zeros((), dtype=backend.dtype, device=backend.device)
        first, last = self.comm.shard(0, data.n) if self.comm is not None else (0, data.n)
        for lo, hi in _batches(last - first, batch_size):
            lo, hi = lo + first, hi + first
            y = net._forward(data.x[lo:hi, ...])
            total = total + loss.value(y, data.t[lo:hi, ...], xp) * float(hi - lo)
            if data.labels is not None:
                correct = correct + correct_count(y, data.labels[lo:hi, ...], xp)
        values = _read([total, correct], xp)
        if self.comm is not None:
            values = self.comm.sum_host(values)
        logs = {"loss": values[0] / data.n}
        if data.labels is not None:
            logs["accuracy"] = values[1] / data.n
        return logs


def predict(net: Sequential, x: Any, batch_size: int | None = None) -> Any:
    """Network outputs ``(n, out_features)`` on the device, computed ``batch_size`` rows at a time."""
    xd = net.prepare_inputs(x)
    n = int(xd.shape[0])
    if batch_size is None or batch_size >= n:
        return net._forward(xd)
    _check_positive(batch_size=batch_size)
    return net.xp.concat([net._forward(xd[lo:hi, ...]) for lo, hi in _batches(n, batch_size)], axis=0)


# ---------------------------------------------------------------------- helpers
def _batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, batch_size):
        yield lo, min(lo + batch_size, n)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _read(arrays: list[Any], xp: Any) -> list[float]:
    """Copy a list of 0-d device arrays to host floats in one transfer."""
    if not arrays:
        return []
    return [float(v) for v in to_host(xp.stack(arrays)).tolist()]


def _snapshot(net: Sequential, optimizer: Optimizer) -> tuple[list[Any], dict[Any, dict[str, Any]]]:
    """Device copies of the parameters and optimizer state (restored after a non-finite loss)."""
    xp = net.xp
    params = [xp.asarray(p.value, copy=True) for p in net._parameters]
    state = {p: {k: xp.asarray(v, copy=True) for k, v in s.items()} for p, s in optimizer.state.items()}
    return params, state


def _check_finite(losses: list[float], start: int, epoch: int, snapshot: Any, net: Sequential,
                  optimizer: Optimizer) -> None:
    for b in range(start, len(losses)):
        if not math.isfinite(losses[b]):
            params, state = snapshot
            for p, value in zip(net._parameters, params, strict=True):
                p.value = value
            optimizer.state = state
            raise NonFiniteLossError(
                f"the training loss became {losses[b]} at epoch {epoch + 1}, batch {b + 1}; the weights and "
                f"optimizer state were restored to before batch {start + 1} of that epoch. Try a smaller "
                f"learning rate (now {optimizer.lr:g}), scaled inputs, or check the data for NaN/inf")


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer) -> Iterator[None]:
    """While fitting, the first Ctrl-C asks the loop to stop at the next batch boundary; a
    second one interrupts at once. Only possible in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if trainer._interrupted:
            raise KeyboardInterrupt
        trainer._interrupted = True
        print("\nInterrupted: stopping after this batch (Ctrl-C again to abort now)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(total: int, desc: str, verbose: int) -> Any:
    if verbose < 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=verbose > 1, dynamic_ncols=True)


def _print_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            value = logs[key]
            parts.append(f"{key} {100 * value:.2f}%" if "accuracy" in key else f"{key} {value:.4f}")
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['time']:.2f}s")
    print("  ".join(parts), file=sys.stderr)
