"""Where the property tests run, and their Hypothesis budget (shared by ``tests/property``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from bpx.testing.params import BackendConfig, availability

#: (backend, device) pairs; each test is parametrised over them and skips what is not installed.
PLACES = [("numpy", None), ("array_api_strict", None), ("array_api_strict", "device1"), ("torch", "cpu"),
          ("jax", None)]


def place_params() -> list[Any]:
    """``PLACES`` as pytest params, each skipped (with the reason) when its backend is missing."""
    params = []
    for name, device in PLACES:
        reason = availability(BackendConfig(name, device, "float64"))
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param((name, device), id=f"{name}-{device or 'default'}", marks=marks))
    return params


def budget(place: tuple[str, Any], examples: int, jax: int) -> settings:
    """Hypothesis settings: ``examples`` per backend, ``jax`` on eager JAX (slow: every new shape
    compiles each operation); derandomized, so CI runs the same examples every time."""
    n = jax if place[0] == "jax" else examples
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
