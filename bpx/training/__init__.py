"""Training: the one step (eager, compiled, distributed), the fit loop, callbacks, metrics, history."""

from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .data import DeviceData, batch_ranges, prepare_data
from .history import History
from .loop import Trainer, predict
from .metrics import METRICS, accuracy_reference, correct_count, resolve_metrics
from .step import StepResult, train_step

__all__ = ["METRICS", "Callback", "DeviceData", "EarlyStopping", "History", "ModelCheckpoint", "StepResult",
           "Trainer", "accuracy_reference", "batch_ranges", "correct_count", "predict", "prepare_data",
           "resolve_metrics", "train_step"]
