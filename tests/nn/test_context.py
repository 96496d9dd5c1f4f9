"""The Context of a pass: its defaults and the constants it caches (reused only where allowed)."""

import numpy as np
import pytest

import bpx
from bpx.nn.layer import Context


def test_defaults():
    ctx = Context(bpx.get_backend("numpy", dtype="float64"), training=True)
    assert (ctx.training, ctx.seed, ctx.step, ctx.position) == (True, 0, 0, 0)


def test_constants_have_the_right_values_and_are_reused_only_with_a_cache():
    backend = bpx.get_backend("numpy", dtype="float64")
    plain = Context(backend, training=False)
    assert float(plain.zero()) == 0.0 and plain.zero().shape == ()
    np.testing.assert_array_equal(plain.ones((2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(plain.arange(4, np.int64), [0, 1, 2, 3])
    assert plain.ones((2, 3)) is not plain.ones((2, 3))  # no cache: made afresh
    cache = {}
    cached = Context(backend, training=False, cache=cache)
    assert cached.ones((2, 3)) is cached.ones((2, 3)) and cached.zero() is cached.zero()
    assert cached.ones((2, 3)) is not cached.ones((3, 2))
    assert cached.arange(4, np.int64) is cached.arange(4, np.int64) and len(cache) == 4


def test_immutable_backends_never_cache():
    jax_backend = pytest.importorskip("jax") and bpx.get_backend("jax", dtype="float32")
    cache = {}
    ctx = Context(jax_backend, training=False, cache=cache)
    ctx.ones((2,))
    assert cache == {}
