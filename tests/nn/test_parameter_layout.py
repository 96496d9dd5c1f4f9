"""Freezing or unfreezing a parameter re-lays out the flat buffer (trainable parameters first):
values survive, and a parameter's value read after the change is a view of the buffer that the
next update writes (NumPy: in place)."""

import numpy as np

import bpx


def test_a_value_read_after_freezing_is_a_view_of_the_buffer_the_next_update_writes():
    net = bpx.Sequential(bpx.Dense(2, 2), bpx.Tanh(), bpx.Dense(2, 1), dtype="float64", seed=0)
    first, last = net.layers[0], net.layers[2]
    before = {name: p.value.copy() for name, p in net.named_parameters().items()}
    last.bias.value  # noqa: B018 - a cached view of the current layout
    first.weight.trainable = False  # the layout changes: weight moves behind the trainable parameters
    bias = last.bias.value
    np.testing.assert_array_equal(bias, before["layers.2.bias"])
    net.store.refresh_layout()
    assert np.shares_memory(bias, net.store.values)
    grads = np.ones(net.store.trainable_size)
    bpx.SGD(lr=0.5).update(net.store, net.backend.asarray(grads))
    np.testing.assert_array_equal(bias, before["layers.2.bias"] - 0.5)  # the held view sees the update
    np.testing.assert_array_equal(first.weight.value, before["layers.0.weight"])  # frozen: unchanged
    assert net.store.trainable_size == net.n_parameters - 4
