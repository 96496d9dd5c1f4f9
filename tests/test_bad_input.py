"""Bad input gets a clear error naming the offending value, shape or name."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close


@pytest.fixture
def net():
    return bpx.Sequential(bpx.Dense(4, 5), bpx.ReLU(), bpx.Dense(5, 3), dtype="float64", seed=0)


def test_feature_count_that_does_not_match_the_first_dense(net):
    with pytest.raises(ValueError, match=r"x: expected shape \(n_samples, 4\).*got \(2, 3\)"):
        net.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"for one sample use shape \(1, 4\)"):
        net.forward(np.ones(4))


def test_layers_that_do_not_chain():
    message = r"layers\[2\] Dense: expects 6 input features, but the previous layer gives 5"
    with pytest.raises(ValueError, match=message):
        bpx.Sequential(bpx.Dense(4, 5), bpx.ReLU(), bpx.Dense(6, 3))
    with pytest.raises(ValueError, match="first layer must be Dense"):
        bpx.Sequential(bpx.ReLU(), bpx.Dense(4, 5))
    with pytest.raises(TypeError, match=r"layers\[1\] is a str"):
        bpx.Sequential(bpx.Dense(4, 5), "relu")
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        bpx.Dense(0, 3)


@pytest.mark.parametrize("loss, targets, message", [
    ("half_squared_error", np.ones((2, 2)), r"targets of shape \(2, 2\) do not fit the network's 3 outputs"),
    ("mean_squared_error", np.ones(2), r"targets of shape \(2,\) do not fit"),
    ("half_squared_error", np.ones((3, 3)), "3 targets for 2 samples"),
    ("softmax_cross_entropy", [0, 3], r"class label 3 is outside \[0, 3\)"),
    ("softmax_cross_entropy", [-1, 0], r"class label -1 is outside \[0, 3\)"),
    ("softmax_cross_entropy", [0.0, 1.0], "class labels must be integers"),
    ("binary_cross_entropy", np.full((2, 3), 2.0), r"targets must lie in \[0, 1\]"),
    ("mean_squared_error", np.ones((2, 3), dtype=bool), "targets must be real numbers"),
])
def test_targets_that_do_not_fit(net, loss, targets, message):
    with pytest.raises(ValueError, match=message):
        net.train_step(np.ones((2, 4)), targets, loss, bpx.SGD(lr=0.1))


def test_single_output_hint():
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    with pytest.raises(ValueError, match=r"reshape to \(n, 1\)"):
        net.train_step(np.ones((3, 2)), np.ones(3), "mse", "sgd")


def test_integer_and_boolean_inputs_are_cast_to_the_network_dtype(net):
    ints = np.array([[0, 1, 2, 255]], dtype=np.uint8)
    out = net.forward(ints)
    assert out.dtype == np.float64
    assert_close(out, net.forward(ints.astype(np.float64)))
    assert_close(net.forward(np.array([[True, False, True, True]])), net.forward([[1.0, 0.0, 1.0, 1.0]]))


def test_complex_or_text_input_is_rejected(net):
    with pytest.raises(ValueError, match="inputs must be real numbers"):
        net.forward(np.ones((1, 4), dtype=np.complex128))
    with pytest.raises((ValueError, TypeError)):
        net.forward([["a", "b", "c", "d"]])


def test_array_from_another_backend(net):
    torch = pytest.importorskip("torch")
    with pytest.raises(bpx.DeviceMismatchError, match="x is a torch array but the network uses the 'numpy' backend"):
        net.forward(torch.ones((2, 4), dtype=torch.float64))


def test_array_on_another_device():
    xp = pytest.importorskip("array_api_strict")
    net = bpx.Sequential(bpx.Dense(4, 2), backend="array_api_strict", device="device1", dtype="float64", seed=0)
    x = xp.ones((2, 4), dtype=xp.float64)  # default device, not device1
    with pytest.raises(bpx.DeviceMismatchError, match=r"x lives on device .*CPU_DEVICE.* but the network is on"):
        net.forward(x)
    with pytest.raises(bpx.DeviceMismatchError, match="targets lives on device"):
        net.train_step(np.ones((2, 4)), xp.ones((2, 2), dtype=xp.float64), "mse", "sgd")
    # host data is moved once, by rule
    assert net.forward(np.ones((2, 4))).device == xp.Device("device1")


def test_unknown_names(net):
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        net.train_step(np.ones((1, 4)), [0], "crossentropy", "sgd")
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'"):
        net.train_step(np.ones((1, 4)), [0], "softmax_cross_entropy", "sgdd")
