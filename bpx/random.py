"""Counter-based random numbers built from standard Array API operations only (dropout masks).

The standard has no random numbers, so bpx hashes each element's flat (row-major) index with a
key made of ``(seed, step, stream)``. The same key gives **bit-identical** results on every
backend (NumPy, CuPy, PyTorch, JAX with or without x64, array-api-strict), because only integer
operations whose result the standard fully defines are used: every intermediate value is an int32
between 0 and 2**31 - 1 (no overflow, no wrap-around, no uint32, no int64).

Algorithm (details and limits in ``docs/random.md``): a 7-round Philox-style permutation of the
31-bit counter space, on two limbs of 16 and 15 bits. Each round multiplies one limb by an odd
constant (16-bit × 15-bit < 2**31), xors the high part of the product and a 15/16-bit round key
into the other limb and keeps the low part. Round keys are SplitMix64 words of ``(seed, stream)``
(computed on the host with Python ints) xored with a spread of ``step``. The top 24 of the 31 state
bits are the random bits.

Array operations per call (flat ``arange`` to reshaped result; each is one kernel on a GPU;
``reshape`` is a view on NumPy, CuPy and PyTorch):

=============== ================= ==========================================
function        step a Python int step a 0-d int32 array (int64: one more)
=============== ================= ==========================================
``random_bits`` 38                52 (14 of them on 0-d arrays)
``keep_mask``   38                52
``uniform``     40                54
=============== ================= ==========================================

Nothing is cached; nothing reads data back to the host, so the functions run on PyTorch's
``meta`` device and trace under ``jax.jit`` with a traced ``step``. Not cryptographic.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .errors import BpxTypeError, BpxValueError

__all__ = ["BITS", "KEY_LIMIT", "MAX_ELEMENTS", "ROUNDS", "keep_mask", "random_bits", "uniform"]

#: Random bits per element: integers in ``[0, 2**BITS)`` (exact in float32).
BITS = 24
#: ``seed``, ``stream`` and a Python-int ``step`` must lie in ``[0, KEY_LIMIT)``.
KEY_LIMIT = 2**31
#: Largest number of elements per call (the counter is an int32 flat index).
MAX_ELEMENTS = 2**31 - 1
#: Rounds of the permutation (5 already pass the statistical tests in ``tests/test_random.py``).
ROUNDS = 7

# Odd multipliers: _MUL_S (15 bits) times a 16-bit limb, _MUL_L (16 bits) times a 15-bit limb.
_MUL_S = 0x7A35
_MUL_L = 0xB5A7
# Odd multipliers that spread the step's low 16 and high 15 bits before they enter the round keys.
_SPREAD_LO = 0x6A09
_SPREAD_HI = 0xE667
_M64 = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(z: int) -> int:
    """The SplitMix64 output function (Steele, Lea and Flood 2014) on a 64-bit Python int."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _check_key(name: str, value: Any) -> int:
    """Validate ``seed`` or ``stream`` (or a Python-int ``step``): an int in ``[0, KEY_LIMIT)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BpxTypeError(f"{name} must be a Python int in [0, 2**31), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < KEY_LIMIT:
        raise BpxValueError(f"{name} must be in [0, 2**31), got {value}")
    return value


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or any(isinstance(d, bool) or not isinstance(d, numbers.Integral)
                                              for d in shape):
        raise BpxTypeError(f"shape must be an int or a sequence of ints, got {shape!r}")
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise BpxValueError(f"shape must not have negative sizes, got {shape}")
    n = math.prod(shape)
    if n > MAX_ELEMENTS:
        raise BpxValueError(f"shape {shape} has {n} elements; at most {MAX_ELEMENTS} (2**31 - 1) per call: "
                            "split the array and give each part its own stream")
    return shape


def _step_limbs(xp: Any, step: Any) -> tuple[Any, Any]:
    """``(step mod 2**31)`` as a low 16-bit and a high 15-bit limb: Python ints, or int32 0-d arrays."""
    if isinstance(step, numbers.Integral) and not isinstance(step, bool):
        t = _check_key("step", step)
        return t & 0xFFFF, t >> 16
    if not (hasattr(step, "shape") and hasattr(step, "dtype")):
        raise BpxTypeError(f"step must be a Python int or a 0-d integer array, got {type(step).__name__}")
    if tuple(step.shape) != ():
        raise BpxValueError(f"step must be a 0-d array, got shape {tuple(step.shape)}")
    if not xp.isdtype(step.dtype, "integral"):
        raise BpxTypeError(f"step must have an integer dtype, got {step.dtype}")
    info = xp.iinfo(step.dtype)
    if info.bits > 32 or (info.bits == 32 and info.min == 0):     # int64, uint32, uint64: reduce first
        t = xp.astype(step & 0x7FFFFFFF, xp.int32)
        return t & 0xFFFF, t >> 16
    t = step if step.dtype == xp.int32 else xp.astype(step, xp.int32)
    return t & 0xFFFF, (t >> 16) & 0x7FFF                          # masks make a negative step wrap


def _round_keys(seed: int, stream: int, t_lo: Any, t_hi: Any) -> list[Any]:
    """Round ``r``'s key: 15 bits for even ``r``, 16 bits for odd ``r``. Python ints or 0-d arrays."""
    z = seed * KEY_LIMIT + stream
    u = (t_lo * _SPREAD_LO) & 0xFFFF            # bijective spread of the step's low limb (< 2**31)
    v = (t_hi * _SPREAD_HI) & 0x7FFF            # ... and of its high limb
    keys = []
    for r in range(ROUNDS):
        k = _splitmix64((z + (r + 1) * _GOLDEN) & _M64)
        keys.append((k & 0x7FFF) ^ v if r % 2 == 0 else (k & 0xFFFF) ^ u)
    return keys


def _state(counter: Any, keys: Sequence[Any]) -> Any:
    """The 31-bit state for non-negative counters ``< 2**31`` (any integer array dtype).

    Even rounds take limbs ``(x0: 16 bits, x1: 15 bits)`` to ``(15, 16)``, odd rounds back; all
    values stay in ``[0, 2**31)``. Returns ``(x0 << 16) | x1`` after the last (even) round.
    """
    p = (counter & 0xFFFF) * _MUL_S                         # x0 = counter & 0xFFFF, x1 = counter >> 16
    x0 = ((p ^ counter) >> 16) ^ keys[0]                    # == (p >> 16) ^ x1 ^ key
    x1 = p & 0xFFFF
    for r in range(1, ROUNDS - 1):
        if r % 2:
            p = x0 * _MUL_L
            x0, x1 = (p >> 15) ^ x1 ^ keys[r], p & 0x7FFF
        else:
            p = x0 * _MUL_S
            x0, x1 = (p >> 16) ^ x1 ^ keys[r], p & 0xFFFF
    p = x0 * _MUL_S                                         # last round: both limbs in one int
    return p ^ ((x1 ^ keys[ROUNDS - 1]) << 16)


def _flat_state(xp: Any, device: Any, shape: Any, seed: Any, step: Any, stream: Any) -> tuple[Any, tuple[int, ...]]:
    shape = _check_shape(shape)
    seed, stream = _check_key("seed", seed), _check_key("stream", stream)
    keys = _round_keys(seed, stream, *_step_limbs(xp, step))
    counter = xp.arange(math.prod(shape), dtype=xp.int32, device=device)
    return _state(counter, keys), shape


def random_bits(xp: Any, device: Any, shape: int | Sequence[int], *, seed: int, step: Any, stream: int) -> Any:
    """Uniform random integers in ``[0, 2**24)``: an int32 array of ``shape`` on ``device``.

    Args:
        xp: the Array API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
        device: where the result lives (any device ``xp.arange`` accepts).
        shape: the result's shape; at most ``MAX_ELEMENTS`` (2**31 - 1) elements, else BpxValueError.
            Element ``i`` of the row-major flattening uses counter ``i``, so a prefix of a flat
            result equals the result of a shorter call.
        seed, stream: Python ints in ``[0, 2**31)``.
        step: a Python int in ``[0, 2**31)``, or a 0-d integer array on ``device`` (may be a
            ``jax.jit`` tracer; it is taken modulo 2**31 since it cannot be checked without a sync).

    The same ``(seed, step, stream, shape)`` gives the same bits on every backend.
    """
    state, shape = _flat_state(xp, device, shape, seed, step, stream)
    return xp.reshape(state >> (31 - BITS), shape)


def uniform(xp: Any, device: Any, shape: int | Sequence[int], *, seed: int, step: Any, stream: int,
            dtype: Any) -> Any:
    """Uniform floats in ``[0, 1)``: ``random_bits(...) * 2**-24`` as ``dtype`` (float32 or float64).

    Every value is a multiple of 2**-24, exact in both dtypes, so results are identical on every
    backend. Arguments as in :func:`random_bits`.
    """
    if dtype not in (xp.float32, xp.float64):
        raise BpxValueError(f"dtype must be float32 or float64 of the namespace, got {dtype!r}")
    state, shape = _flat_state(xp, device, shape, seed, step, stream)
    return xp.reshape(xp.astype(state >> (31 - BITS), dtype) * 2.0**-BITS, shape)


def keep_mask(xp: Any, device: Any, shape: int | Sequence[int], keep_prob: float, *, seed: int, step: Any,
              stream: int) -> Any:
    """A bool array of ``shape``: True with probability ``keep_prob`` (a Python float in [0, 1]).

    Element ``i`` is True iff ``random_bits(...)[i] < round(keep_prob * 2**24)`` (an exact integer
    comparison, so masks are bit-identical on every backend); ``keep_prob=0`` gives all False and
    ``keep_prob=1`` all True. Other arguments as in :func:`random_bits`.
    """
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, numbers.Real):
        raise BpxTypeError(f"keep_prob must be a Python float in [0, 1], got {type(keep_prob).__name__}")
    keep_prob = float(keep_prob)
    if not 0.0 <= keep_prob <= 1.0:                         # also rejects NaN
        raise BpxValueError(f"keep_prob must be in [0, 1], got {keep_prob}")
    threshold = round(keep_prob * 2**BITS)
    state, shape = _flat_state(xp, device, shape, seed, step, stream)
    # bits < threshold  <=>  state < threshold * 2**7  <=>  state <= threshold * 2**7 - 1 (fits int32)
    return xp.reshape(state <= threshold * 2 ** (31 - BITS) - 1, shape)
