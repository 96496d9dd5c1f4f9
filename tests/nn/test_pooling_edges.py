"""Pooling windows at the edges of what fits: a window exactly as large as its input gives one
output row or column; one row or column too large is refused, in either direction."""

import pytest

import bpx
from bpx.errors import ShapeError


@pytest.mark.parametrize("pool", [bpx.MaxPool2D, bpx.AvgPool2D])
def test_a_window_as_large_as_the_input_fits_and_one_larger_does_not(pool):
    assert pool(3).output_shape((2, 3, 5)) == (2, 1, 1)
    assert pool(3).output_shape((2, 5, 3)) == (2, 1, 1)
    for shape in ((2, 2, 5), (2, 5, 2)):
        with pytest.raises(ShapeError, match="window is larger than its input"):
            pool(3).output_shape(shape)
