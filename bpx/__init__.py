"""bpx: backpropagation written once against the Python Array API standard.

The same code trains on NumPy, CuPy, PyTorch, JAX or array-api-strict, chosen with
``backend=``. See the README for a tour and ``docs/`` for the derivations.
"""

from .backend import Backend, BackendError, DeviceMismatchError, get_backend, to_host
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .gradcheck import GradcheckError, GradcheckResult, gradcheck
from .io import CheckpointError, load
from .layers import Dense, Identity, Layer, LeakyReLU, Parameter, ReLU, Sigmoid, Softmax, Tanh
from .losses import BinaryCrossEntropy, HalfSquaredError, Loss, MeanSquaredError, SoftmaxCrossEntropy, get_loss
from .models import mlp
from .network import Sequential
from .optim import SGD, Adam, AdamW, Optimizer, get_optimizer
from .schedules import ConstantLR, CosineLR, StepLR
from .trace import StepTrace, explain
from .train import History, NonFiniteLossError

__version__ = "0.1.0"

__all__ = [
    "SGD", "Adam", "AdamW", "Backend", "BackendError", "BinaryCrossEntropy", "Callback", "CheckpointError",
    "ConstantLR", "CosineLR", "Dense", "DeviceMismatchError", "EarlyStopping", "GradcheckError",
    "GradcheckResult", "HalfSquaredError", "History", "Identity", "Layer", "LeakyReLU", "Loss",
    "MeanSquaredError", "ModelCheckpoint", "NonFiniteLossError", "Optimizer", "Parameter", "ReLU", "Sequential",
    "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepLR", "StepTrace", "Tanh", "explain", "get_backend",
    "get_loss", "get_optimizer", "gradcheck", "load", "mlp", "to_host",
]
