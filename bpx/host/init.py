"""Seeded host-side randomness: initial weights and the order in which an epoch visits samples.

Everything is drawn on the host in float64 from a NumPy generator and then moved to the device,
so one seed gives the same network and the same batches on every backend and device (the
lesson Thinc and Chainer teach). Initialisers receive the generator, the parameter's shape and
its fans: for a ``Dense`` weight ``(in, out)`` fan_in = in and fan_out = out; for a convolution
kernel ``(out_c, in_c, kh, kw)`` fan_in = in_c·kh·kw and fan_out = out_c·kh·kw.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import BpxTypeError, BpxValueError, ShapeError
from .arrays import to_host

#: A user initialiser: ``f(rng, shape) -> array of that shape``.
UserInitializer = Callable[[np.random.Generator, tuple[int, ...]], Any]
#: bpx's own initialisers also receive the fans: ``f(rng, shape, fan_in, fan_out)``.
Initializer = Callable[[np.random.Generator, tuple[int, ...], int, int], np.ndarray]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """U(−a, a) with a = √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010); for tanh/sigmoid."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def glorot_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out))."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """U(−a, a) with a = √(6 / fan_in) (He et al. 2015); for ReLU."""
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def he_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """N(0, 2 / fan_in)."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def lecun_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """N(0, 1 / fan_in) (LeCun et al. 1998)."""
    return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)


def zeros(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """All zeros (the default for biases)."""
    return np.zeros(shape)


def ones(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """All ones (the default for normalisation scales)."""
    return np.ones(shape)


INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_normal, zeros, ones)
}


def get_initializer(init: str | UserInitializer, owner: str = "init") -> Initializer:
    """bpx's initialiser called ``init``, or a user callable ``f(rng, shape)`` adapted to the
    fan-aware signature. Raises a bpx error naming ``owner`` for an unknown name or a non-callable."""
    if isinstance(init, str):
        try:
            return INITIALIZERS[init]
        except KeyError:
            raise BpxValueError(f"{owner}: unknown initialiser {init!r}; valid names: "
                                f"{', '.join(INITIALIZERS)}") from None
    if not callable(init):
        raise BpxTypeError(f"{owner}: init must be a name or a callable f(rng, shape), got {type(init).__name__}")
    try:
        n_args = len(inspect.signature(init).parameters)
    except (TypeError, ValueError):
        n_args = 2
    if n_args >= 4:
        return init  # already fan-aware

    def adapted(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> Any:
        return init(rng, shape)

    return adapted


def draw(init: Initializer, rng: np.random.Generator, shape: tuple[int, ...], fans: tuple[int, int],
         name: str) -> np.ndarray:
    """Call ``init`` and check that it returned finite numbers of exactly ``shape`` (float64)."""
    return host_values(init(rng, shape, *fans), shape, f"{name} (from its initialiser)")


def host_values(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Explicit parameter values (nested lists, a scalar, any backend's array) as a finite float64
    host array of exactly ``shape``; a scalar fills the shape. Raises :class:`ShapeError` on a shape
    mismatch and :class:`BpxValueError` for non-numbers or non-finite values, naming ``name``."""
    from .arrays import as_host_array

    if isinstance(value, (str, bytes)) or value is None:
        raise BpxTypeError(f"{name}: expected numbers, got {type(value).__name__} {value!r}")
    try:
        host = to_host(value) if not isinstance(value, (list, tuple, int, float, np.ndarray, np.generic)) else value
    except BpxTypeError:  # not an array (a dict, a complex number, ...)
        raise BpxTypeError(f"{name}: expected numbers or an array, got {type(value).__name__}") from None
    host = as_host_array(host, name)
    if host.dtype.kind == "b":
        raise BpxTypeError(f"{name}: expected numbers, got booleans")
    with np.errstate(over="ignore", invalid="ignore"):
        host = np.array(host, dtype=np.float64)
    if host.ndim == 0:
        host = np.full(shape, float(host))
    elif host.shape != tuple(shape):
        hint = " (Dense weights are shaped (in, out); did you pass the transpose?)" \
            if host.shape == tuple(shape)[::-1] and len(shape) == 2 else ""
        raise ShapeError(f"{name}: expected shape {tuple(shape)}, got {host.shape}{hint}")
    if not np.all(np.isfinite(host)):
        raise BpxValueError(f"{name}: values must be finite, got NaN or ±inf")
    return host


def full_host(shape: tuple[int, ...], value: float) -> np.ndarray:
    """A float64 host array of ``shape`` filled with ``value``."""
    return np.full(shape, value)


def make_rng(seed: int | None) -> np.random.Generator:
    """The host generator for initial weights and batch orders (``None``: fresh OS entropy)."""
    return np.random.default_rng(check_seed(seed))


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` validated: ``None`` or a non-negative int (bools are refused)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise BpxTypeError(f"{name} must be a non-negative int or None, got {seed!r}")
    if seed < 0:
        raise BpxValueError(f"{name} must be a non-negative int or None, got {seed}")
    return int(seed)


def fresh_seed() -> int:
    """A seed drawn from OS entropy (to be shared, e.g. broadcast to every MPI rank), below 2**31."""
    return int(np.random.SeedSequence().generate_state(1)[0]) & 0x7FFFFFFF


def batch_order(rng: np.random.Generator, n: int, shuffle: bool = True) -> np.ndarray:
    """The order in which an epoch visits ``n`` samples: a permutation drawn from ``rng``, or
    ``0..n-1`` without shuffling."""
    return rng.permutation(n) if shuffle else np.arange(n)
