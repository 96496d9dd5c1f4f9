"""Forward and backward: layers, losses and the ``Network`` that runs them.

Core code: written against the Array API only (it never imports NumPy; host values come
through :mod:`bpx.host`). See :mod:`bpx.nn.layer` for the layer contract.
"""

from .activations import ACTIVATIONS, Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, sigmoid
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .layer import Context, Layer, layer_from_config
from .losses import (
    LOSSES,
    BinaryCrossEntropy,
    HalfSquaredError,
    Loss,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    get_loss,
    one_hot,
)
from .network import ForwardPass, Network, Observer, Summary
from .norm import BatchNorm, BatchNorm2D, LayerNorm
from .parameter import Buffer, Gradients, Parameter, ParameterStore
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import Flatten

__all__ = [
    "ACTIVATIONS", "LOSSES", "Activation", "AvgPool2D", "BatchNorm", "BatchNorm2D", "BinaryCrossEntropy", "Buffer",
    "Context", "Conv2D", "Dense", "Dropout", "Flatten", "ForwardPass", "GlobalAvgPool2D", "Gradients",
    "HalfSquaredError", "Identity", "Layer", "LayerNorm", "LeakyReLU", "Loss", "MaxPool2D", "MeanSquaredError",
    "Network", "Observer", "Parameter", "ParameterStore", "ReLU", "Sigmoid", "Softmax", "SoftmaxCrossEntropy",
    "Summary", "Tanh", "get_loss", "layer_from_config", "one_hot", "sigmoid",
]
