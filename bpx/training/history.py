"""``History``: what ``fit`` measured, epoch by epoch, as host floats."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class History:
    """Per-epoch metrics: ``history["loss"]``, ``["accuracy"]`` (when measured), ``["val_loss"]``,
    ``["val_accuracy"]`` (with validation data), ``["lr"]``, ``["time"]`` (seconds); every batch's
    loss in ``batch_losses``. ``interrupted`` is true after Ctrl-C, ``stopped_early`` after a
    callback stopped training. An interrupted epoch is recorded over the batches it completed
    (``partial_epoch``)."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    batch_losses: list[float] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False
    partial_epoch: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    def __contains__(self, key: object) -> bool:
        return key in self.metrics

    @property
    def epochs(self) -> int:
        """The number of epochs recorded (a partial, interrupted epoch included)."""
        return len(self.metrics.get("loss", []))

    def last(self) -> dict[str, float]:
        """The last epoch's metrics."""
        return {k: v[-1] for k, v in self.metrics.items() if v}

    def append(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.metrics.setdefault(key, []).append(value)

    def plot(self, path: str | Path | None = None, title: str = "") -> Any:
        """Learning curves (loss, and accuracy when measured) with matplotlib: written to ``path``
        (PNG, SVG, PDF... from the suffix) when given, and the figure returned otherwise."""
        from ..plotting import plot_history

        return plot_history(self, path, title)
