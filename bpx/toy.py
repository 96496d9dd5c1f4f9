"""Small classic problems, ready to use: the 2-2-2 worked example of backpropagation.

The worked example (a 2-2-2 sigmoid network, half squared error, learning rate 0.5) is the
one most backprop tutorials compute by hand; its numbering of the weights is
``net_h1 = w1·i1 + w2·i2 + b1``, ``net_h2 = w3·i1 + w4·i2 + b1``,
``net_o1 = w5·out_h1 + w6·out_h2 + b2``, ``net_o2 = w7·out_h1 + w8·out_h2 + b2``.
bpx stores ``W`` as ``(in, out)``, so ``w1 = W[0, 0]``, ``w2 = W[1, 0]``, ``w3 = W[0, 1]``, ...
"""

from __future__ import annotations

from typing import Any

from .layers import Dense, Sigmoid
from .network import Sequential

WORKED_INPUTS = [[0.05, 0.10]]
WORKED_TARGETS = [[0.01, 0.99]]
WORKED_WEIGHTS = (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)  # w1..w8
WORKED_BIASES = (0.35, 0.60)  # b1, b2 (not trained)
WORKED_LR = 0.5


def textbook_matrix(weights: tuple[float, ...] | list[float], n_in: int, n_out: int) -> list[list[float]]:
    """Weights numbered target neuron by target neuron (w1, w2 feed the first neuron) as the
    ``(n_in, n_out)`` matrix that ``Dense`` uses."""
    if len(weights) != n_in * n_out:
        raise ValueError(f"expected {n_in * n_out} weights for a {n_in}->{n_out} layer, got {len(weights)}")
    return [[weights[j * n_in + i] for j in range(n_out)] for i in range(n_in)]


def worked_example(backend: Any = None, device: Any = None, dtype: Any = "float64") -> Sequential:
    """The 2-2-2 sigmoid network of the worked example (biases frozen)."""
    w, (b1, b2) = WORKED_WEIGHTS, WORKED_BIASES
    return Sequential(
        Dense(2, 2, weight=textbook_matrix(w[:4], 2, 2), bias=b1, train_bias=False), Sigmoid(),
        Dense(2, 2, weight=textbook_matrix(w[4:], 2, 2), bias=b2, train_bias=False), Sigmoid(),
        backend=backend, device=device, dtype=dtype,
    )
