"""Ready-made architectures."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from .layers import ACTIVATIONS, Dense, Layer
from .network import Sequential


def mlp(sizes: Sequence[int], activation: str = "relu", output_activation: str | None = None,
        **network: Any) -> Sequential:
    """A multilayer perceptron ``Dense → activation → … → Dense [→ output_activation]``.

    ``sizes`` are the layer widths, input first (``[784, 256, 10]``: one hidden layer); hidden
    weights use He initialisation for (leaky) ReLU and Glorot otherwise; the output layer gives
    logits unless ``output_activation`` is named. Keyword arguments go to :class:`Sequential`
    (``backend``, ``device``, ``dtype``, ``seed``).
    """
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least input and output sizes, got {list(sizes)}")
    for name in (activation, output_activation):
        if name is not None and name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    init = "he_uniform" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    layers: list[Layer] = []
    for n_in, n_out in itertools.pairwise(sizes[:-1]):
        layers += [Dense(n_in, n_out, init=init), ACTIVATIONS[activation]()]
    layers.append(Dense(sizes[-2], sizes[-1]))
    if output_activation is not None:
        layers.append(ACTIVATIONS[output_activation]())
    return Sequential(*layers, **network)
