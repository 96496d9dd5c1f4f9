"""Ready-made networks: ``mlp`` and the 2-2-2 worked example of backpropagation.

The worked example (a 2-2-2 sigmoid network, half squared error, learning rate 0.5) is the one
most backprop tutorials compute by hand; its numbering of the weights is
``net_h1 = w1·i1 + w2·i2 + b1``, ``net_h2 = w3·i1 + w4·i2 + b1``,
``net_o1 = w5·out_h1 + w6·out_h2 + b2``, ``net_o2 = w7·out_h1 + w8·out_h2 + b2``.
bpx stores ``W`` as ``(in, out)``, so ``w1 = W[0, 0]``, ``w2 = W[1, 0]``, ``w3 = W[0, 1]``, ...
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from .checks import check_bool, check_float, check_int
from .errors import BpxTypeError, BpxValueError, ShapeError
from .nn.activations import ACTIVATIONS, Sigmoid
from .nn.dense import Dense
from .nn.dropout import Dropout
from .nn.layer import Layer
from .nn.norm import BatchNorm
from .sequential import Sequential

WORKED_INPUTS = [[0.05, 0.10]]
WORKED_TARGETS = [[0.01, 0.99]]
WORKED_WEIGHTS = (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)  # w1..w8
WORKED_BIASES = (0.35, 0.60)  # b1, b2 (not trained)
WORKED_LR = 0.5


def mlp(sizes: Sequence[int], activation: str = "relu", output_activation: str | None = None, *,
        dropout: float = 0.0, batch_norm: bool = False, input_dropout: float = 0.0, init: str | None = None,
        **network: Any) -> Sequential:
    """A multilayer perceptron ``Dense → activation → … → Dense [→ output_activation]``.

    ``sizes`` are the layer widths, input first (``[784, 256, 10]``: one hidden layer); hidden
    weights use ``init`` (an initialiser name of :class:`Dense`; default He for (leaky) ReLU and
    Glorot otherwise), the output layer Glorot; the output layer gives
    logits unless ``output_activation`` is named. Keyword arguments go to :class:`Sequential`
    (``backend``, ``device``, ``dtype``, ``seed``).

    Regularisation (off by default, which gives the plain stack above):

    * ``batch_norm=True`` puts a :class:`BatchNorm` between each hidden ``Dense`` and its
      activation (normalising the pre-activations, as Ioffe and Szegedy did); those ``Dense``
      layers then have no bias, since BatchNorm's own ``bias`` replaces it (a bias before batch
      normalisation has zero gradient).
    * ``dropout=p`` puts a :class:`Dropout` of rate ``p`` after each hidden activation, so every
      hidden layer reads as ``Dense → [BatchNorm →] activation → [Dropout]``. Dropout after the
      activation and after BatchNorm keeps the batch statistics free of dropout's noise and the
      running statistics equal to what inference sees.
    * ``input_dropout=p`` drops input features at rate ``p`` before the first ``Dense``.
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise BpxTypeError(f"mlp: sizes must be a list of layer widths such as [784, 256, 10], got {sizes!r}")
    if len(sizes) < 2:
        raise BpxValueError(f"mlp needs at least input and output sizes, got {list(sizes)}")
    sizes = [check_int(n, f"mlp sizes[{i}]") for i, n in enumerate(sizes)]
    for arg, name in (("activation", activation), ("output_activation", output_activation)):
        if (name is not None or arg == "activation") and (not isinstance(name, str) or name not in ACTIVATIONS):
            raise BpxValueError(f"mlp {arg}: unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    dropout = check_float(dropout, "mlp dropout", 0.0, 1.0, high_open=True)
    input_dropout = check_float(input_dropout, "mlp input_dropout", 0.0, 1.0, high_open=True)
    batch_norm = check_bool(batch_norm, "mlp batch_norm")
    if init is None:
        init = "he_uniform" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    layers: list[Layer] = [Dropout(input_dropout)] if input_dropout > 0.0 else []
    for n_in, n_out in itertools.pairwise(sizes[:-1]):
        layers.append(Dense(n_in, n_out, init=init, use_bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNorm(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0.0:
            layers.append(Dropout(dropout))
    layers.append(Dense(sizes[-2], sizes[-1]))
    if output_activation is not None:
        layers.append(ACTIVATIONS[output_activation]())
    if input_dropout > 0.0:
        network.setdefault("input_shape", (sizes[0],))  # Dropout takes any shape: the Dense cannot tell it now
    return Sequential(*layers, **network)


def textbook_matrix(weights: Sequence[float], n_in: int, n_out: int) -> list[list[float]]:
    """Weights numbered target neuron by target neuron (w1, w2 feed the first neuron) as the
    ``(n_in, n_out)`` matrix that ``Dense`` uses."""
    if len(weights) != n_in * n_out:
        raise BpxValueError(f"expected {n_in * n_out} weights for a {n_in}->{n_out} layer, got {len(weights)}")
    return [[weights[j * n_in + i] for j in range(n_out)] for i in range(n_in)]


def worked_example(backend: Any = None, device: Any = None, dtype: Any = "float64") -> Sequential:
    """The 2-2-2 sigmoid network of the worked example (biases frozen)."""
    w, (b1, b2) = WORKED_WEIGHTS, WORKED_BIASES
    return Sequential(
        Dense(2, 2, weight=textbook_matrix(w[:4], 2, 2), bias=b1, train_bias=False), Sigmoid(),
        Dense(2, 2, weight=textbook_matrix(w[4:], 2, 2), bias=b2, train_bias=False), Sigmoid(),
        backend=backend, device=device, dtype=dtype, seed=0,
    )


def cnn(input_shape: Sequence[int] = (1, 28, 28), classes: int = 10, channels: Sequence[int] = (16, 32),
        kernel_size: int = 5, hidden: int | None = 128, padding: int = 0, **network: Any) -> Sequential:
    """A LeNet-style convolutional network for ``(n, C, H, W)`` images, giving class logits:
    ``[Conv2D(kernel_size, padding) → ReLU → MaxPool2D(2)]`` per entry of ``channels``, then
    ``Flatten → Dense(hidden) → ReLU → Dense(classes)`` (no hidden layer when ``hidden`` is ``None``).

    The default is LeNet-5's shape with ReLU and max pooling: on MNIST ``(1, 28, 28)``, 5×5 valid
    convolutions and 2×2 pools give 16×12×12, then 32×4×4 = 512 features, then 128, then 10
    (80,202 parameters). Convolutions and hidden layers use He initialisation (ReLU). Keyword
    arguments go to :class:`Sequential` (``backend``, ``device``, ``dtype``, ``seed``); raises
    :class:`bpx.ShapeError` when the image becomes smaller than a kernel.
    """
    from .nn.conv import Conv2D
    from .nn.pooling import MaxPool2D
    from .nn.reshape import Flatten

    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or len(input_shape) != 3:
        raise BpxTypeError(f"cnn: input_shape must be (channels, height, width), e.g. (1, 28, 28), got {input_shape!r}")
    shape: tuple[int, ...] = tuple(check_int(d, f"cnn input_shape[{i}]") for i, d in enumerate(input_shape))
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or not channels:
        raise BpxTypeError(f"cnn: channels must be a non-empty list of channel counts such as [16, 32], "
                           f"got {channels!r}")
    classes = check_int(classes, "cnn classes")
    layers: list[Layer] = []
    in_channels = shape[0]
    for i, out_channels in enumerate(channels):
        out_channels = check_int(out_channels, f"cnn channels[{i}]")
        layers += [Conv2D(in_channels, out_channels, kernel_size, padding=padding), ACTIVATIONS["relu"](),
                   MaxPool2D(2)]
        in_channels = out_channels
    for i, layer in enumerate(layers):  # the flattened width
        try:
            shape = layer.output_shape(shape)
        except ShapeError as err:
            raise ShapeError(f"cnn: input_shape {tuple(input_shape)} is too small for {len(channels)} convolution "
                             f"blocks; layers[{i}] {err}") from None
    features = shape[0] * shape[1] * shape[2]
    layers.append(Flatten())
    if hidden is not None:
        hidden = check_int(hidden, "cnn hidden")
        layers += [Dense(features, hidden, init="he_uniform"), ACTIVATIONS["relu"]()]
        features = hidden
    layers.append(Dense(features, classes))
    return Sequential(*layers, input_shape=tuple(int(d) for d in input_shape), **network)
