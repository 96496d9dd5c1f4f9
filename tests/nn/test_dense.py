"""Dense details not covered elsewhere: the fans its initialiser receives, its configuration, and a
classifier layer wide enough for the transposed products against PyTorch autograd."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close, backend_params


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


@pytest.mark.parametrize("cfg", backend_params())
@pytest.mark.parametrize("train_bias", [True, False], ids=["bias-trained", "bias-frozen"])
def test_a_classifier_layer_wide_enough_for_the_transposed_products_matches_autograd(cfg, train_bias):
    """Dense(128, 10) on a batch of 128: on PyTorch's CPU its forward product and its weight
    gradient are narrow products (see ``narrow_product``), with the bias folded in or not."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w, b = rng.normal(size=(128, 10)) / 8, rng.normal(size=10)
    x, labels = rng.normal(size=(128, 128)), rng.integers(0, 10, size=128)
    dense = bpx.Dense(128, 10, weight=w, bias=b, train_bias=train_bias)
    net = bpx.Sequential(dense, backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=0)
    value = net.train_step(x, labels, "softmax_cross_entropy", bpx.SGD(lr=0.1))
    W, B = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=train_bias)
    logits = torch.tensor(x) @ W + B
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
    ref.backward()
    assert_close(value, ref.item(), dtype=cfg.dtype)
    assert_close(dense.weight.grad, W.grad.numpy(), dtype=cfg.dtype)
    if train_bias:
        assert_close(dense.bias.grad, B.grad.numpy(), dtype=cfg.dtype)
    assert_close(net.predict(x), (torch.tensor(x) @ (W - 0.1 * W.grad) + B - 0.1 * (B.grad if train_bias else 0))
                 .detach().numpy(), dtype=cfg.dtype, factor=4)
