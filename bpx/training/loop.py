"""The training loop: ``fit``, ``evaluate`` and ``predict``.

The dataset moves to the network's device once per call. Each epoch draws a permutation on the
host from the seed (same seed → same batches on every backend), gathers minibatches on the
device and keeps every batch's loss and count of correct predictions as 0-d device arrays. They
are read back once per epoch (or every ``check_every`` batches), together with a check that the
parameters are finite: no host synchronisation per batch.

Failure leaves a documented state (see :meth:`Trainer.fit`): training never returns non-finite
parameters; a non-finite loss, an exception during a batch, a failed compiled trace or a second
Ctrl-C restore the network and optimizer to the last check (a state known to be finite).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import check_bool, check_float, check_int
from ..errors import BpxTypeError, BpxValueError, NonFiniteError
from ..host.arrays import to_host
from ..host.init import batch_order, check_seed, make_rng
from ..nn.losses import Loss
from ..nn.network import Network
from ..optim.optimizers import Optimizer, get_optimizer
from ..optim.schedules import Schedule, get_schedule
from .callbacks import Callback
from .data import DeviceData, RunBatch, batch_ranges, chunk_batches, gather_chunk, prepare_data
from .guard import Snapshot
from .history import History
from .interrupt import StopFlag, stop_on_sigint
from .metrics import correct_count, predictions, resolve_metrics
from .step import train_step

if TYPE_CHECKING:
    from .distributed import Communicator

class Trainer:
    """Runs ``fit``/``evaluate`` for one network, loss and optimizer (see :meth:`fit`)."""

    def __init__(self, net: Network, loss: str | Loss | None, optimizer: str | Optimizer | None = None,
                 comm: Communicator | None = None, metrics: Any = None) -> None:
        self.net = net
        self.loss = net.resolve_loss(loss)
        self.optimizer = get_optimizer(optimizer) if optimizer is not None else None
        self.metrics = resolve_metrics(metrics if metrics is not None or loss is not None else net.metrics,
                                       self.loss)
        self.comm = comm
        self.history = History()
        self.stop = False
        self.has_validation = False
        self._chunked = False
        self._flag = StopFlag()

    @property
    def is_main(self) -> bool:
        """True on the process that prints and saves (rank 0, or the only process)."""
        return self.comm is None or self.comm.is_main

    def metric_names(self) -> list[str]:
        """The names of the metrics each epoch reports (for callbacks to check what they monitor)."""
        names = ["loss", *self.metrics]
        return names + [f"val_{n}" for n in names] if self.has_validation else names

    def save(self, path: str | Path) -> Path:
        """Write the network and the optimizer to the checkpoint ``path`` (see :mod:`bpx.io`)."""
        from ..io import save

        return save(self.net, path, self.optimizer)

    # ------------------------------------------------------------------ fit
    def fit(self, x: Any, targets: Any, *, epochs: int = 1, batch_size: int = 32,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
            callbacks: Sequence[Callback] = (), lr_schedule: Schedule | None = None, check_every: int | None = None,
            verbose: int = 1, compile: bool = False, initial_epoch: int = 0) -> History:
        """Train; see :meth:`bpx.Sequential.fit` for the arguments.

        States after failure: a non-finite loss or parameter raises :class:`NonFiniteError` after
        restoring the last check; any other exception raised during a batch (a failed compiled
        trace, a second Ctrl-C) restores the last check too and propagates; an exception in a
        callback propagates with the network as the last completed epoch left it. The first
        Ctrl-C ends training after the current batch: the epoch so far is recorded and ``fit``
        returns with ``history.interrupted``.
        """
        epochs = check_int(epochs, "epochs")
        initial_epoch = check_int(initial_epoch, "initial_epoch", low=0)
        if initial_epoch >= epochs:
            raise BpxValueError(f"initial_epoch={initial_epoch} leaves nothing to train: epochs={epochs} counts "
                                "all epochs, those already done included")
        batch_size = check_int(batch_size, "batch_size")
        check_every = None if check_every is None else check_int(check_every, "check_every")
        shuffle = check_bool(shuffle, "shuffle")
        compile = check_bool(compile, "compile")
        verbose = _check_verbose(verbose)
        seed = check_seed(seed)
        callbacks = _check_callbacks(callbacks)
        schedule = get_schedule(lr_schedule)
        if self.optimizer is None:
            raise BpxValueError("fit needs an optimizer, e.g. optimizer=bpx.SGD(lr=0.1)")
        net = self.net
        net.backend.require_data("fit")
        self.optimizer.bind(net.store)  # refuses an optimizer bound to another network, before any work
        if self.comm is None:
            return self._fit(x, targets, epochs, batch_size, validation_data, shuffle, seed, callbacks, schedule,
                             check_every, verbose, compile, initial_epoch)
        with self.comm.abort_on_error():
            return self._fit(x, targets, epochs, batch_size, validation_data, shuffle, seed, callbacks, schedule,
                             check_every, verbose, compile, initial_epoch)

    def _fit(self, x: Any, targets: Any, epochs: int, batch_size: int, validation_data: Any, shuffle: bool,
             seed: int | None, callbacks: list[Callback], schedule: Schedule | None, check_every: int | None,
             verbose: int, compile: bool, initial_epoch: int = 0) -> History:
        net, optimizer = self.net, self.optimizer
        assert optimizer is not None
        train = prepare_data(net, self.loss, x, targets, self.metrics)
        val = None
        if validation_data is not None:
            vx, vt = _check_validation(validation_data)
            val = prepare_data(net, self.loss, vx, vt, self.metrics, prefix="validation ")
        self.has_validation = val is not None
        net.loss, net.metrics = self.loss, list(self.metrics)
        run_batch = self._batch_function(compile)
        self._chunked = compile and net.backend.name == "jax"
        #: The eager loop on one process gathers several batches at once (see ``_eager_chunk``).
        self._gather = 0 if compile or self.comm is not None else chunk_batches(train, batch_size)
        if seed is None:  # reproducible by default: derived from the network's seed and progress
            seed = (net.seed * 1_000_003 + net.step_count) % 2**31
        if self.comm is not None:  # identical replicas and batch order on every rank
            self.comm.broadcast_parameters(net)
            seed = self.comm.broadcast_object(seed)
            verbose = verbose if self.comm.is_main else 0
        net.store.check_finite("fit: before training")
        rng = make_rng(seed)
        for _ in range(initial_epoch):  # the batch orders of the epochs already done
            batch_order(rng, train.n, shuffle)
        if initial_epoch == 0:  # a resumed run continues the schedule of its saved base rate
            optimizer.base_lr = optimizer.lr
        base_lr = optimizer.base_lr
        self.stop = False
        snapshot = Snapshot.take(net, optimizer)
        with stop_on_sigint(self._flag, quiet=verbose == 0):  # already during on_train_begin
            for cb in callbacks:
                cb.on_train_begin(self)
            try:
                for epoch in range(initial_epoch, epochs):
                    if schedule is not None:
                        optimizer.lr = check_float(schedule(epoch, base_lr), f"the learning rate that lr_schedule "
                                                   f"{schedule!r} gives for epoch {epoch}", 0.0)
                    start = time.perf_counter()
                    logs, snapshot = self._epoch(train, run_batch, rng, epoch, epochs, batch_size, shuffle,
                                                 check_every, verbose, snapshot)
                    stopping = self.history.interrupted
                    if not self.history.partial_epoch:
                        net.epochs_trained += 1
                    if val is not None and not stopping:
                        logs.update({f"val_{k}": v for k, v in self._evaluate(val, 4 * batch_size).items()})
                    logs["lr"] = optimizer.lr
                    logs["time"] = time.perf_counter() - start
                    self.history.append(logs)
                    if verbose:
                        _print_epoch(epoch, epochs, logs, stopping)
                    if stopping:
                        break
                    for cb in callbacks:
                        cb.on_epoch_end(self, epoch, logs)
                    if self.stop:
                        self.history.stopped_early = True
                        break
            finally:
                if schedule is not None:  # the schedule belongs to this fit: the configured rate stays
                    optimizer.lr = base_lr
                for cb in callbacks:
                    cb.on_train_end(self)
        return self.history

    def _batch_function(self, compile: bool) -> RunBatch | None:
        """The step of a compiled or distributed fit; ``None`` for the eager loop on one process
        (:meth:`_eager_chunk`)."""
        net, loss, optimizer = self.net, self.loss, self.optimizer
        assert optimizer is not None
        if self.comm is not None:
            if compile:
                raise BpxValueError("compile=True and distributed training cannot be combined yet")
            from .distributed import distributed_batch_function

            return distributed_batch_function(net, loss, optimizer, self.comm)
        if compile:
            from .compiled import compiled_batch_function

            return compiled_batch_function(net, loss, optimizer)
        return None

    def _epoch(self, data: DeviceData, run_batch: RunBatch | None, rng: Any, epoch: int, epochs: int, batch_size: int,
               shuffle: bool, check_every: int | None, verbose: int,
               snapshot: Snapshot) -> tuple[dict[str, float], Snapshot]:
        net, optimizer, backend = self.net, self.optimizer, self.net.backend
        assert optimizer is not None
        n = data.n
        perm = backend.asarray(batch_order(rng, n, shuffle), backend.int_dtype, name="batch order")
        n_batches = math.ceil(n / batch_size)
        interval = check_every or n_batches
        n_full = n // batch_size
        losses: list[Any] = []
        corrects: list[Any] = []
        sizes: list[int] = []
        read_losses: list[float] = []
        read_corrects: list[float] = []
        bar = _progress(n_batches, f"epoch {epoch + 1}/{epochs}", verbose)
        b = 0
        try:
            while b < n_batches:
                # a chunk is the full batches up to the next check point (a compiled JAX call runs
                # them all; the eager loop gathers at most self._gather of them at once)
                k = 1  # the last, partial batch always goes alone
                if self._chunked or self._gather:
                    k = max(1, min(interval - b % interval, n_full - b, self._gather or n_batches))
                lo, hi = b * batch_size, min((b + k) * batch_size, n)
                if self._gather:
                    done, stop = self._eager_chunk(data, perm[lo:hi], k, losses, corrects, bar)
                    sizes += [(hi - lo) // k] * done
                    b += done
                    at_check = b == n_batches or b % interval == 0
                else:
                    idx = backend.xp.reshape(perm[lo:hi], (k, batch_size)) if k > 1 else perm[lo:hi]
                    sizes += [batch_size] * k if k > 1 else [hi - lo]
                    assert run_batch is not None
                    value, correct = run_batch(data, idx)
                    losses.append(value)
                    if correct is not None:
                        corrects.append(correct)
                    b += k
                    if bar is not None:
                        bar.update(k)
                    at_check = b == n_batches or b % interval == 0
                    stop = self._stop_requested(at_check)
                if at_check or stop:
                    start = len(read_losses)
                    read_losses += _read(losses, net.xp)
                    read_corrects += _read(corrects, net.xp)
                    losses.clear()
                    corrects.clear()
                    self._check_finite(read_losses, start, epoch, snapshot)
                    snapshot = Snapshot.take(net, optimizer)
                if stop:
                    self.history.interrupted = True
                    self.history.partial_epoch = b < n_batches
                    break
        except BaseException:
            snapshot.restore(net, optimizer)
            raise
        finally:
            if bar is not None:
                bar.close()
        done = sum(sizes)
        self.history.batch_losses += read_losses
        logs = {"loss": sum(v * s for v, s in zip(read_losses, sizes, strict=True)) / done}
        if data.reference is not None:
            logs["accuracy"] = sum(read_corrects) / done
        return logs, snapshot

    def _eager_chunk(self, data: DeviceData, idx: Any, batches: int, losses: list[Any], corrects: list[Any],
                     bar: Any) -> tuple[int, bool]:
        """Train on the rows ``idx`` as ``batches`` equal batches gathered at once (one step each,
        on this process); a Ctrl-C still takes effect after the current batch. Appends each batch's
        loss and the chunk's count of correct predictions; returns ``(batches done, stop)``."""
        net, loss, optimizer, xp = self.net, self.loss, self.optimizer, self.net.xp
        assert optimizer is not None
        chunk = gather_chunk(net, loss, data, idx, batches)
        predicted: list[Any] = []
        done, stop = 0, False
        for x, targets in zip(chunk.inputs, chunk.targets, strict=True):
            result = train_step(net, x, targets, loss, optimizer, keep_gradients=False)
            losses.append(result.loss)
            if chunk.reference is not None:
                predicted.append(predictions(result.outputs, chunk.reference, xp))
            done += 1
            if bar is not None:
                bar.update(1)
            stop = self._flag.requested
            if stop:
                break
        if predicted:
            corrects.append(chunk.count_correct(predicted, xp))
        return done, stop

    def _stop_requested(self, at_check: bool) -> bool:
        """Ctrl-C takes effect after the current batch; across MPI ranks at the next check point,
        where all ranks agree (so none is left waiting in a collective)."""
        if self.comm is None:
            return self._flag.requested
        return at_check and self.comm.any(self._flag.requested)

    def _check_finite(self, losses: list[float], start: int, epoch: int, snapshot: Snapshot) -> None:
        net, optimizer = self.net, self.optimizer
        assert optimizer is not None
        bad = next((b for b in range(start, len(losses)) if not math.isfinite(losses[b])), None)
        params_ok = _read([net.store.all_finite()], net.xp) == [1.0]
        if bad is None and params_ok:
            return
        snapshot.restore(net, optimizer)
        where = (f"the training loss became {losses[bad]} at epoch {epoch + 1}, batch {bad + 1}" if bad is not None
                 else f"the parameters became non-finite during epoch {epoch + 1} (by batch {len(losses)})")
        raise NonFiniteError(
            f"{where}; the weights and optimizer state were restored to the last check (before batch {start + 1} of "
            f"that epoch). Try a smaller learning rate (now {optimizer.lr:g}), scaled inputs, or check the data")

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, x: Any, targets: Any, batch_size: int = 1024) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``(x, targets)`` in inference mode."""
        batch_size = check_int(batch_size, "batch_size")
        self.net.backend.require_data("evaluate")
        return self._evaluate(prepare_data(self.net, self.loss, x, targets, self.metrics), batch_size)

    def _evaluate(self, data: DeviceData, batch_size: int) -> dict[str, float]:
        """Loss and accuracy over ``data`` (each MPI rank evaluates its share; totals are summed)."""
        net, xp, loss, backend = self.net, self.net.xp, self.loss, self.net.backend
        ctx = net.context(training=False)
        total = backend.zeros((), backend.master_dtype)
        correct = backend.zeros((), backend.master_dtype)
        first, last = self.comm.shard(0, data.n) if self.comm is not None else (0, data.n)
        for lo, hi in batch_ranges(last - first, batch_size):
            lo, hi = lo + first, hi + first
            outputs = net.forward_pass(data.x[lo:hi, ...], ctx, keep=False).outputs
            total = total + loss.value(outputs, data.targets[lo:hi, ...], ctx) * float(hi - lo)
            if data.reference is not None:
                count = correct_count(outputs, data.reference[lo:hi, ...], xp)
                correct = correct + xp.astype(count, backend.master_dtype)
        values = _read([total, correct], xp)
        if self.comm is not None:
            values = self.comm.sum_host(values)
        logs = {"loss": values[0] / data.n}
        if not math.isfinite(logs["loss"]):  # finite data and weights, but the arithmetic overflowed
            raise NonFiniteError(f"the {loss.name} over {data.n} samples is {logs['loss']}: the outputs overflowed "
                                 f"in {backend.dtype_name}; scale the inputs (or use dtype='float64')")
        if data.reference is not None:
            logs["accuracy"] = values[1] / data.n
        return logs


#: Rows ``predict`` passes through the network at once unless told otherwise (bounds the memory
#: of large inputs: a convolution's im2col buffer grows with the batch).
PREDICT_BATCH = 1024


def predict(net: Network, x: Any, batch_size: int | None = PREDICT_BATCH) -> Any:
    """Network outputs ``(n, *output_shape)`` on the device, in inference mode, computed
    ``batch_size`` rows at a time (all at once when ``None``) and joined."""
    xd = net.prepare_inputs(x)
    n = int(xd.shape[0])
    ctx = net.context(training=False)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    if batch_size is None or batch_size >= n:
        return net.forward_pass(xd, ctx, keep=False).outputs
    parts = [net.forward_pass(xd[lo:hi, ...], ctx, keep=False).outputs for lo, hi in batch_ranges(n, batch_size)]
    return net.xp.concat(parts, axis=0)


# ---------------------------------------------------------------------- helpers
def _read(arrays: list[Any], xp: Any) -> list[float]:
    """Copy a list of device arrays of one dtype (0-d, or 1-D from compiled chunks) to host floats
    in one transfer: the only way ``fit`` reads anything back during training (the tests count
    its calls)."""
    if not arrays:
        return []
    if all(a.ndim == 0 for a in arrays):
        joined = xp.stack(arrays)
    else:
        joined = xp.concat([xp.reshape(a, (-1,)) for a in arrays])
    return [float(v) for v in to_host(joined).tolist()]


def _check_verbose(verbose: Any) -> int:
    if isinstance(verbose, bool):
        return int(verbose)
    if not isinstance(verbose, int) or verbose not in (0, 1, 2):
        raise BpxValueError(f"verbose must be 0 (silent), 1 (progress) or 2 (progress kept), got {verbose!r}")
    return verbose


def _check_callbacks(callbacks: Any) -> list[Callback]:
    if isinstance(callbacks, Callback):
        raise BpxTypeError("callbacks must be a list, e.g. callbacks=[bpx.EarlyStopping()]; got a single callback")
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise BpxTypeError(f"callbacks must be a list of bpx callbacks, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise BpxTypeError(f"callbacks[{i}] is {cb!r}, not a bpx Callback")
    return list(callbacks)


def _check_validation(validation_data: Any) -> tuple[Any, Any]:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        length = f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""
        raise BpxTypeError(f"validation_data must be a pair (x, targets), got {type(validation_data).__name__}{length}")
    return validation_data[0], validation_data[1]


def _progress(total: int, desc: str, verbose: int) -> Any:
    """A tqdm bar on a terminal (``verbose`` ≥ 1); ``None`` elsewhere (logs get one line per epoch)."""
    if verbose < 1 or not (sys.stderr and sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=verbose > 1, dynamic_ncols=True, file=sys.stderr)


def _print_epoch(epoch: int, epochs: int, logs: dict[str, float], interrupted: bool) -> None:
    names = {"loss": "loss", "accuracy": "accuracy", "val_loss": "val_loss", "val_accuracy": "val_accuracy"}
    parts = [f"epoch {epoch + 1}/{epochs}" + (" (interrupted)" if interrupted else "")]
    for key, label in names.items():
        if key in logs:
            value = logs[key]
            parts.append(f"{label} {100 * value:.2f}%" if "accuracy" in key else f"{label} {value:.4f}")
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['time']:.2f}s")
    print("  ".join(parts), file=sys.stderr, flush=True)
