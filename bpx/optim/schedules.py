"""Learning-rate schedules: ``schedule(epoch, base_lr) -> lr`` for epochs counted from 0.

``fit`` sets ``optimizer.lr`` from the schedule at the start of each epoch (a Python float, so
nothing is read back from the device).
"""

from __future__ import annotations

import math
from typing import Any

from ..checks import check_float, check_int
from ..errors import BpxTypeError, BpxValueError


class Schedule:
    """Base class: ``__call__(epoch, base_lr) -> lr``."""

    def __call__(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class ConstantLR(Schedule):
    """The base learning rate for every epoch."""

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr


class StepLR(Schedule):
    """``base_lr · gamma^(epoch // step_size)``: multiply by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check_int(step_size, "StepLR step_size")
        self.gamma = check_float(gamma, "StepLR gamma", 0.0, 1.0, low_open=True)

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(Schedule):
    """Cosine decay from ``base_lr`` at epoch 0 to ``min_lr`` at epoch ``epochs`` and after:
    ``min_lr + (base_lr − min_lr) · (1 + cos(π·min(epoch, epochs)/epochs)) / 2``."""

    def __init__(self, epochs: int, min_lr: float = 0.0) -> None:
        self.epochs = check_int(epochs, "CosineLR epochs")
        self.min_lr = check_float(min_lr, "CosineLR min_lr", 0.0)

    def __call__(self, epoch: int, base_lr: float) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, type[Schedule]] = {"constant": ConstantLR, "step": StepLR, "cosine": CosineLR}


def get_schedule(schedule: Any) -> Schedule | None:
    """``None`` or a :class:`Schedule` instance as is; anything else is refused (names need
    arguments: write ``bpx.CosineLR(epochs)``)."""
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str):
        raise BpxValueError(f"lr_schedule={schedule!r}: pass a schedule object, e.g. bpx.CosineLR(epochs) or "
                            "bpx.StepLR(step_size); names alone cannot carry their arguments")
    if isinstance(schedule, type) and issubclass(schedule, Schedule):
        raise BpxTypeError(f"lr_schedule: pass an instance, e.g. {schedule.__name__}(...), not the class")
    raise BpxTypeError(f"lr_schedule must be a bpx Schedule (ConstantLR, StepLR, CosineLR), got {schedule!r}")
