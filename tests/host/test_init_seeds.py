"""Seeds: what check_seed accepts (ints, NumPy ints; no bools, no strings), and fresh seeds drawn
from OS entropy, which are 31-bit non-negative ints (a PyTorch/JAX-friendly range)."""

import numpy as np
import pytest

import bpx
from bpx.host.init import check_seed, fresh_seed


def test_seeds_are_ints_or_numpy_ints_and_never_bools_or_text():
    assert check_seed(5) == 5 and check_seed(np.int64(7)) == 7 and check_seed(None) is None
    for bad in (True, np.bool_(False), "1", 1.0):
        with pytest.raises((bpx.BpxTypeError, bpx.BpxValueError), match="seed"):
            check_seed(bad)


def test_fresh_seeds_are_varied_31_bit_non_negative_ints():
    seeds = [fresh_seed() for _ in range(32)]
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) > 16
