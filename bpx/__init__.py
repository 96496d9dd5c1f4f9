"""bpx: backpropagation written once against the Python Array API standard.

The same code trains on NumPy, CuPy, PyTorch, JAX or array-api-strict, chosen with
``backend=``. See the README for a tour and ``docs/`` for the derivations. The package's tree
shows the architecture: ``backend`` (where arrays live), ``nn`` (forward and backward),
``optim`` (the update), ``training`` (the step and the fit loop), ``io`` (checkpoints),
``explain``, ``datasets``, ``cli`` and ``testing``.
"""

from typing import Any

from . import startup  # noqa: F401  (first: the `bpx` command exits quietly on Ctrl-C while loading)
from .architectures import cnn, mlp, worked_example
from .backend import Backend, get_backend
from .errors import (
    BackendError,
    BpxError,
    BpxTypeError,
    BpxValueError,
    CheckpointError,
    CheckpointWriteError,
    DatasetError,
    DeviceMismatchError,
    GradcheckError,
    MissingDependencyError,
    NonFiniteError,
    NonFiniteLossError,
    ShapeError,
    SpecError,
    StateError,
)
from .explain import StepTrace, explain
from .export import export_onnx
from .host.arrays import to_host
from .nn import (
    AvgPool2D,
    BatchNorm,
    BatchNorm2D,
    BinaryCrossEntropy,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    HalfSquaredError,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    Loss,
    MaxPool2D,
    MeanSquaredError,
    Parameter,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
    get_loss,
)
from .optim import SGD, Adam, AdamW, ConstantLR, CosineLR, Optimizer, Schedule, StepLR, get_optimizer
from .sequential import Sequential, load
from .testing.gradcheck import GradcheckResult, gradcheck
from .training import Callback, EarlyStopping, History, ModelCheckpoint
from .training.loggers import CSVLogger, JSONLinesLogger, TensorBoardLogger
from .version import __version__

__all__ = [
    "SGD", "Adam", "AdamW", "AvgPool2D", "Backend", "BackendError", "BatchNorm", "BatchNorm2D", "BinaryCrossEntropy",
    "BpxError", "BpxTypeError", "BpxValueError", "CSVLogger", "Callback", "CheckpointError", "CheckpointWriteError",
    "ConstantLR", "Conv2D", "CosineLR", "DatasetError", "Dense", "DeviceMismatchError", "Dropout", "EarlyStopping",
    "Flatten", "GlobalAvgPool2D", "GradcheckError", "GradcheckResult", "HalfSquaredError", "History", "Identity",
    "JSONLinesLogger", "Layer", "LayerNorm", "LeakyReLU", "Loss", "MaxPool2D", "MeanSquaredError",
    "MissingDependencyError", "ModelCheckpoint", "NonFiniteError", "NonFiniteLossError", "Optimizer", "Parameter",
    "ReLU", "Schedule", "Sequential", "ShapeError", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "SpecError",
    "StateError", "StepLR", "StepTrace", "Tanh", "TensorBoardLogger", "__version__", "cnn", "explain", "export_onnx",
    "get_backend", "get_loss", "get_optimizer", "gradcheck", "load", "mlp", "to_host", "worked_example",
]


def __getattr__(name: str) -> Any:
    """``bpx.datasets`` is imported on first use (it is host-side data loading, not needed to train)."""
    if name == "datasets":
        import importlib

        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module 'bpx' has no attribute {name!r}")
