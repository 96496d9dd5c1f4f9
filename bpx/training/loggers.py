"""Callbacks that log each epoch's metrics to a file: :class:`CSVLogger`, :class:`JSONLinesLogger`,
and :class:`TensorBoardLogger` (through ``torch.utils.tensorboard`` or ``tensorboardX``).

Each row is one epoch: ``epoch`` (1-based, counting epochs done before ``initial_epoch`` too),
then the metrics of the fit (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` as
measured), ``lr`` and ``time`` (seconds). Lines are flushed as they are written, so a crashed or
interrupted run keeps every completed epoch. ``append=True`` continues an existing file (a
resumed run); otherwise the file is started afresh when training starts. In distributed
training only rank 0 writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import IO, Any

from ..checks import check_bool
from ..errors import BpxTypeError, BpxValueError, CheckpointWriteError, MissingDependencyError
from ..version import DISTRIBUTION
from .callbacks import Callback, Trainer

__all__ = ["CSVLogger", "JSONLinesLogger", "TensorBoardLogger", "logger_for"]


def _path(path: Any, owner: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise BpxTypeError(f"{owner} path must be a file name (str or Path), got {path!r}")
    return Path(path)


def _columns(trainer: Trainer) -> list[str]:
    return ["epoch", *trainer.metric_names(), "lr", "time"]


class _FileLogger(Callback):
    """Opens ``path`` when training starts (append or fresh), writes a line per epoch, closes at the end."""

    kind = "log"

    def __init__(self, path: str | os.PathLike[str], append: bool = False) -> None:
        self.path = _path(path, type(self).__name__)
        self.append = check_bool(append, f"{type(self).__name__} append")
        self._file: IO[str] | None = None
        self.columns: list[str] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        from ..host.files import check_writable

        self.close()
        self.columns = _columns(trainer)
        if not trainer.is_main:
            return
        check_writable(self.path, f"{self.kind} file")
        resume = self.append and self.path.is_file() and self.path.stat().st_size > 0
        if resume:
            self._check_existing()
        try:
            self._file = open(self.path, "a" if resume else "w", encoding="utf-8", newline="")
        except OSError as err:
            raise CheckpointWriteError(f"cannot write {self.kind} file {str(self.path)!r}: "
                                       f"{err.strerror or err}") from None
        if not resume:
            self._start()

    def _check_existing(self) -> None:
        """Check an existing file can be continued; drop a torn last line (a killed run's)."""
        with open(self.path, "rb+") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def _start(self) -> None:
        """Write what a fresh file begins with (CSV: the header)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._file is None:
            return
        row = {"epoch": epoch + 1, **{k: v for k, v in logs.items() if k != "epoch"}}
        self._file.write(self._line(row))
        self._file.flush()

    def _line(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def on_train_end(self, trainer: Trainer) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CSVLogger(_FileLogger):
    """Write each epoch's metrics as a CSV row to ``path``: a header line
    (``epoch,loss,accuracy,...,lr,time``), then one row per epoch, flushed as written.

    ``append=True`` continues an existing file whose header names the same columns (e.g. a run
    resumed with ``initial_epoch``), without a second header; a file with other columns raises
    :class:`bpx.BpxValueError` before training starts. A last line left incomplete by a killed
    run is dropped. ``separator`` is the field delimiter.
    """

    kind = "CSV log"

    def __init__(self, path: str | os.PathLike[str], append: bool = False, separator: str = ",") -> None:
        super().__init__(path, append)
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise BpxValueError(f"CSVLogger separator must be one character (not a quote or newline), "
                                f"got {separator!r}")
        self.separator = separator

    def _check_existing(self) -> None:
        super()._check_existing()
        with open(self.path, encoding="utf-8", newline="") as f:
            first = f.readline()
        try:
            found = next(csv.reader([first], delimiter=self.separator), [])
        except csv.Error:
            found = []
        if found != self.columns:
            raise BpxValueError(f"CSVLogger cannot append to {str(self.path)!r}: its columns are {found} but this "
                                f"fit logs {self.columns}; use another file or append=False to start it afresh")

    def _start(self) -> None:
        assert self._file is not None
        self._file.write(self._format(self.columns))
        self._file.flush()

    def _format(self, values: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.separator, lineterminator="\n").writerow(values)
        return buffer.getvalue()

    def _line(self, row: dict[str, Any]) -> str:
        return self._format(["" if row.get(c) is None else _text(row[c]) for c in self.columns])


class JSONLinesLogger(_FileLogger):
    """Write each epoch's metrics as one JSON object per line (``{"epoch": 1, "loss": 0.31, ...}``)
    to ``path``, flushed as written. Non-finite values are written as ``null``. ``append=True``
    continues an existing file (a last line left incomplete by a killed run is dropped)."""

    kind = "JSON lines log"

    def _line(self, row: dict[str, Any]) -> str:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in row.items()}
        return json.dumps(clean, allow_nan=False) + "\n"


class TensorBoardLogger(Callback):
    """Write each epoch's metrics as TensorBoard scalars under ``log_dir`` (step = the 1-based
    epoch), with ``torch.utils.tensorboard`` when PyTorch and TensorBoard are installed, else
    ``tensorboardX``. Raises :class:`bpx.MissingDependencyError` naming the pip command when
    neither is installed."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.log_dir = _path(log_dir, "TensorBoardLogger")
        self._writer_class = _summary_writer()
        self._writer: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self.on_train_end(trainer)
        if trainer.is_main:
            self._writer = self._writer_class(log_dir=str(self.log_dir))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._writer is None:
            return
        for key, value in logs.items():
            self._writer.add_scalar(key, value, epoch + 1)
        self._writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def logger_for(path: str | os.PathLike[str], append: bool = False) -> CSVLogger | JSONLinesLogger:
    """The logger a file name asks for: :class:`JSONLinesLogger` for ``.jsonl``/``.ndjson``/``.json``,
    :class:`CSVLogger` otherwise (what ``bpx train --log PATH`` uses; ``--resume`` appends)."""
    if Path(os.fspath(path)).suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return JSONLinesLogger(path, append=append)
    return CSVLogger(path, append=append)


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter
    except ImportError:
        pass
    try:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    except ImportError:
        raise MissingDependencyError("TensorBoardLogger needs TensorBoard: pip install tensorboard (with PyTorch, "
                                     f'e.g. pip install "{DISTRIBUTION}[torch]" tensorboard) or pip install '
                                     "tensorboardX") from None


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
