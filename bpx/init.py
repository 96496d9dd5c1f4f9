"""Weight initialisers, drawn on the host in float64 from a seeded NumPy generator.

Drawing on the host and then casting/moving means one seed gives the same network on every
backend and device (the lesson Thinc and Chainer teach). This is a host-boundary module, so it
may use NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Initializer = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010); for tanh/sigmoid."""
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


def glorot_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out))."""
    return rng.normal(0.0, math.sqrt(2.0 / (shape[0] + shape[1])), size=shape)


def he_uniform(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / fan_in) (He et al. 2015); for ReLU."""
    limit = math.sqrt(6.0 / shape[0])
    return rng.uniform(-limit, limit, size=shape)


def he_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 2 / fan_in)."""
    return rng.normal(0.0, math.sqrt(2.0 / shape[0]), size=shape)


def lecun_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 1 / fan_in)."""
    return rng.normal(0.0, math.sqrt(1.0 / shape[0]), size=shape)


def zeros(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape)


INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_normal, zeros)
}


def get_initializer(init: str | Initializer) -> Initializer:
    """Look up an initialiser by name, or return a callable ``f(rng, shape) -> ndarray`` as is."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(f"unknown initialiser {init!r}; valid names: {', '.join(INITIALIZERS)}") from None


def make_rng(seed: int | None) -> np.random.Generator:
    """The host generator for initial weights (``None``: fresh OS entropy)."""
    return np.random.default_rng(seed)


def fresh_seed() -> int:
    """A seed drawn from OS entropy (to be shared, e.g. broadcast to every MPI rank)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def batch_order(rng: np.random.Generator, n: int, shuffle: bool = True) -> np.ndarray:
    """The order in which an epoch visits ``n`` samples: a permutation drawn from ``rng``, or
    ``0..n-1`` without shuffling."""
    return rng.permutation(n) if shuffle else np.arange(n)


def host_values(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Explicit parameter values (nested lists, scalars, any backend's array) as a float64 host
    array of exactly ``shape``; a scalar fills the shape. Raises ValueError on a shape mismatch."""
    from .backend import to_host

    host = np.array(to_host(value), dtype=np.float64)
    if host.ndim == 0:
        return np.full(shape, float(host))
    if host.shape != shape:
        hint = " (Dense weights are shaped (in, out); did you pass the transpose?)" \
            if host.shape == shape[::-1] and len(shape) == 2 else ""
        raise ValueError(f"{name}: expected shape {shape}, got {host.shape}{hint}")
    if not np.all(np.isfinite(host)):
        raise ValueError(f"{name}: values must be finite")
    return host
