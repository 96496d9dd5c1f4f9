"""Callbacks called by ``fit`` once per epoch with the epoch's host-side metrics.

A callback sees the ``Trainer`` (``trainer.net``, ``trainer.optimizer``, ``trainer.history``)
and may set ``trainer.stop = True``. Metric names: ``loss``, ``accuracy``, ``val_loss``,
``val_accuracy``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .train import Trainer


class Callback:
    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch with its metrics (host floats)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once at the end, also after an interruption or an early stop."""


class _Monitor:
    """Tracks the best value of a metric; ``mode`` 'min' for losses, 'max' for accuracies."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1

    def improved(self, logs: dict[str, float], epoch: int) -> bool:
        if self.monitor not in logs:
            raise KeyError(f"cannot monitor {self.monitor!r}: this fit reports {sorted(logs)} "
                           "(val_* metrics need validation_data)")
        value = logs[self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch = value, epoch
        return better


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best`` the network gets back the weights of its best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto",
                 restore_best: bool = True) -> None:
        self._tracker = _Monitor(monitor, mode, min_delta)
        self.patience, self.restore_best = int(patience), restore_best
        self.best_state: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None

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
    """Save the network (atomically) to ``path`` after each epoch, or only when ``monitor``
    improves (``save_best_only``). ``path`` may contain ``{epoch}``. In distributed training
    only rank 0 writes."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str = "auto") -> None:
        self.path = str(path)
        self.save_best_only = save_best_only
        self._tracker = _Monitor(monitor, mode, 0.0)
        self.saved: list[Path] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if (not self.save_best_only or self._tracker.improved(logs, epoch)) and trainer.is_main:
            self.saved.append(trainer.net.save(self.path.format(epoch=epoch + 1), trainer.optimizer))
