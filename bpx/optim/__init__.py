"""The update: optimizers on flat parameter buffers, and learning-rate schedules.

Core code: written against the Array API only. One update is a handful of operations on the
network's flat buffer of trainable parameters, whatever the number of layers.
"""

from .optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, get_optimizer
from .schedules import SCHEDULES, ConstantLR, CosineLR, Schedule, StepLR, get_schedule

__all__ = ["OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "AdamW", "ConstantLR", "CosineLR", "Optimizer", "Schedule",
           "StepLR", "get_optimizer", "get_schedule"]
