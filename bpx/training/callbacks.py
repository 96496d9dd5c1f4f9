"""Callbacks called by ``fit`` with each epoch's host-side metrics.

A callback sees the :class:`bpx.training.loop.Trainer` (``trainer.net``, ``trainer.optimizer``,
``trainer.history``) and may set ``trainer.stop = True``. Metric names: ``loss``, ``accuracy``,
``val_loss``, ``val_accuracy``. Every ``fit`` starts a callback afresh (``on_train_begin`` resets
what it tracked), so one callback object can serve several fits and networks.
"""

from __future__ import annotations

import math
import os
import string
from pathlib import Path
from typing import Any, Protocol

from ..checks import check_bool, check_choice, check_float, check_int
from ..errors import BpxTypeError, BpxValueError
from ..nn.network import Network
from ..optim.optimizers import Optimizer
from .history import History


class Trainer(Protocol):
    """What a callback sees of the training run (:class:`bpx.training.loop.Trainer` provides it)."""

    net: Network
    optimizer: Optimizer | None
    history: History
    stop: bool

    @property
    def is_main(self) -> bool: ...

    def metric_names(self) -> list[str]: ...

    def save(self, path: str | Path) -> Path: ...


class Callback:
    """Base class: override the hooks you need."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first epoch; reset per-fit state here."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """Called after each completed epoch with its metrics (host floats)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once at the end, also after an interruption, an early stop or an error."""


class _Monitor:
    """Tracks the best value of a metric; ``mode`` 'min' for losses, 'max' for accuracies."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if not isinstance(monitor, str):
            raise BpxValueError(f"monitor must be a metric name such as 'val_loss', got {monitor!r}")
        check_choice(mode, "mode", ("auto", "min", "max"))
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.mode = monitor, mode
        self.min_delta = abs(check_float(min_delta, "min_delta"))
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def check(self, trainer: Trainer) -> None:
        available = trainer.metric_names()
        if self.monitor not in available:
            raise BpxValueError(f"cannot monitor {self.monitor!r}: this fit reports {sorted(available)} "
                                "(val_* metrics need validation_data)")

    def improved(self, logs: dict[str, float], epoch: int) -> bool:
        value = logs[self.monitor]
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch = value, epoch
        return better


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    consecutive epochs; with ``restore_best`` the network gets back the weights of its best epoch
    when training stops this way. ``stopped_epoch`` is the (0-based) epoch after which it stopped."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto",
                 restore_best: bool = True) -> None:
        self._tracker = _Monitor(monitor, mode, min_delta)
        self.patience = check_int(patience, "EarlyStopping patience", low=0)
        self.restore_best = check_bool(restore_best, "EarlyStopping restore_best")
        self.best_state: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self._tracker.reset()
        self._tracker.check(trainer)
        self.best_state = None
        self.stopped_epoch = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._tracker.improved(logs, epoch):
            if self.restore_best:
                self.best_state = trainer.net.state_dict()
        elif epoch - self._tracker.best_epoch >= self.patience:
            trainer.stop = True
            self.stopped_epoch = epoch

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state is not None and self.stopped_epoch is not None:
            trainer.net.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the network (atomically, with the optimizer) to ``path`` after each epoch, or only
    when ``monitor`` improves (``save_best_only``). ``path`` may contain ``{epoch}`` (1-based);
    the template and the folder are checked when training starts. In distributed training only
    rank 0 writes. ``saved`` lists the files written by the last fit."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str = "auto") -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise BpxTypeError(f"ModelCheckpoint path must be a file name (str or Path), got {path!r}")
        self.path = os.fspath(path)
        _check_template(self.path)
        self.save_best_only = check_bool(save_best_only, "ModelCheckpoint save_best_only")
        self._tracker = _Monitor(monitor, mode, 0.0)
        self.saved: list[Path] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        from ..host.files import check_writable
        from ..io.checkpoint import checkpoint_path

        self._tracker.reset()
        if self.save_best_only:
            self._tracker.check(trainer)
        self.saved = []
        first = self.path.format(epoch=1)
        check_writable(first if first.endswith(".safetensors") else checkpoint_path(first), "checkpoint")

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if (not self.save_best_only or self._tracker.improved(logs, epoch)) and trainer.is_main:
            self.saved.append(trainer.save(self.path.format(epoch=epoch + 1)))


def _check_template(path: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(path) if name is not None]
    except ValueError as err:
        raise BpxValueError(f"ModelCheckpoint path {path!r} is not a valid template ({err}); "
                            "it may contain {epoch}") from None
    unknown = [f for f in fields if f.split(".")[0].split("[")[0] != "epoch"]
    if unknown:
        raise BpxValueError(f"ModelCheckpoint path {path!r} uses {unknown}; only {{epoch}} is available")
    try:
        path.format(epoch=1)
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as err:
        raise BpxValueError(f"ModelCheckpoint path {path!r} is not a valid template ({type(err).__name__}: {err}); "
                            "it may contain {epoch}") from None
