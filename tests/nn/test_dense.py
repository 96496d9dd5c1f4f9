"""Dense details not covered elsewhere: the fans its initialiser receives and its configuration."""

import numpy as np

import bpx


def test_initialisers_receive_fan_in_and_fan_out():
    seen = []

    def record(rng, shape, fan_in, fan_out):
        seen.append((shape, fan_in, fan_out))
        return np.zeros(shape)

    bpx.Sequential(bpx.Dense(3, 5, init=record), seed=0)
    assert seen == [((3, 5), 3, 5)]


def test_config_records_exactly_the_non_default_arguments():
    assert bpx.Dense(3, 2).config() == {"in_features": 3, "out_features": 2}
    assert bpx.Dense(3, 2, init="he_normal", use_bias=False, train_weight=False).config() == {
        "in_features": 3, "out_features": 2, "init": "he_normal", "use_bias": False, "train_weight": False}
    assert bpx.Dense(3, 2, train_bias=False).config() == {"in_features": 3, "out_features": 2, "train_bias": False}
    assert bpx.Dense(3, 2, init=lambda rng, shape: np.zeros(shape)).config() == {"in_features": 3, "out_features": 2}


def test_training_uses_the_bias_trick_where_the_backend_folds_and_inference_does_not():
    """In training on a folding backend [x, 1] @ [W; b] (one product forward, one for both
    gradients, written into one view of the gradient buffer); in inference, and in training on
    NumPy (which does not fold), x @ W + b."""
    import dataclasses

    import numpy as np

    from bpx.nn.layer import Context

    net = bpx.Sequential(bpx.Dense(3, 2, weight=np.arange(6.0).reshape(3, 2), bias=[1.0, -1.0]), dtype="float64")
    dense, x = net.layers[0], net.prepare_inputs([[1.0, 2.0, 3.0]])
    joint = dense._joint()
    assert joint.shape == (4, 2) and np.shares_memory(joint, net.store.values)
    assert bpx.to_host(joint).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [1.0, -1.0]]
    folding = dataclasses.replace(net.backend, fold_bias=True)
    y, saved = dense.forward(x, Context(folding, training=True))
    assert bpx.to_host(saved).tolist() == [[1.0, 2.0, 3.0, 1.0]] and bpx.to_host(y).tolist() == [[17.0, 21.0]]
    for training in (False, True):  # NumPy: the plain product in training too
        y, saved = dense.forward(x, Context(net.backend, training=training))
        assert saved.shape == (1, 3) and bpx.to_host(y).tolist() == [[17.0, 21.0]]

    dense.bias.trainable = False  # trained differently: no joint view
    assert dense._joint() is None
