"""Learning-rate schedules: ``schedule(epoch, base_lr) -> lr`` for epochs counted from 0.

``fit`` sets ``optimizer.lr`` from the schedule at the start of each epoch (a Python float, so
nothing is read back from the device).
"""

from __future__ import annotations

import math


class Schedule:
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
        if int(step_size) < 1 or not 0 < gamma <= 1:
            raise ValueError(f"StepLR: step_size must be >= 1 and 0 < gamma <= 1, got {step_size}, {gamma}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(Schedule):
    """Cosine decay from ``base_lr`` at epoch 0 to ``min_lr`` at epoch ``epochs``:
    ``min_lr + (base_lr − min_lr) · (1 + cos(π·epoch/epochs)) / 2``."""

    def __init__(self, epochs: int, min_lr: float = 0.0) -> None:
        if int(epochs) < 1 or min_lr < 0:
            raise ValueError(f"CosineLR: epochs must be >= 1 and min_lr >= 0, got {epochs}, {min_lr}")
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def __call__(self, epoch: int, base_lr: float) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
