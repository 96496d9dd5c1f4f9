"""Argument checks shared by every part of bpx: each raises a :mod:`bpx.errors` error that names
the argument and shows the offending value."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import BpxTypeError, BpxValueError


def check_int(value: Any, name: str, low: int | None = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if type(value).__name__ in ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64"):
            value = int(value)
        else:
            raise BpxTypeError(f"{name} must be an int, got {value!r}")
    if low is not None and value < low:
        raise BpxValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise BpxValueError(f"{name} must be <= {high}, got {value}")
    return int(value)


def check_float(value: Any, name: str, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (open or closed at each end)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise BpxTypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise BpxValueError(f"{name} must be finite, got an integer too large for a float") from None
    except (TypeError, ValueError):
        raise BpxTypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise BpxValueError(f"{name} must be finite, got {number}")
    if low is not None and (number <= low if low_open else number < low):
        raise BpxValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {number:g}")
    if high is not None and (number >= high if high_open else number > high):
        raise BpxValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {number:g}")
    return number


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool (0/1 ints are refused too: they hide typos)."""
    if not isinstance(value, bool):
        raise BpxTypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise BpxValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
