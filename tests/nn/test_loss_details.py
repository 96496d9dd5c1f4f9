"""Loss API details: one_hot, get_loss, equality and hashing, and how targets are prepared from
host data and from device arrays (PyTorch tensors), against hand-written expectations."""

import math

import numpy as np
import pytest

import bpx
from bpx.nn.losses import check_label_range, get_loss, one_hot

torch = pytest.importorskip("torch")


def test_one_hot_rows_on_numpy_and_torch():
    labels = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(one_hot(labels, 4, np.float64), np.eye(4)[labels])
    rows = one_hot(torch.tensor(labels), 3, torch.float32)
    assert rows.dtype == torch.float32
    np.testing.assert_array_equal(rows.numpy(), np.eye(3)[labels])


def test_get_loss_returns_an_instance_as_is_and_builds_classes_and_names():
    loss = bpx.MeanSquaredError()
    assert get_loss(loss) is loss
    assert type(get_loss(bpx.BinaryCrossEntropy)) is bpx.BinaryCrossEntropy
    assert type(get_loss(" Cross-Entropy ")) is bpx.SoftmaxCrossEntropy


def test_losses_are_equal_by_type_and_configuration_and_hash_alike():
    assert bpx.HalfSquaredError() == bpx.HalfSquaredError()
    assert bpx.HalfSquaredError() != bpx.MeanSquaredError() and bpx.HalfSquaredError() != "half_squared_error"
    assert hash(bpx.HalfSquaredError()) == hash(bpx.HalfSquaredError())
    assert len({bpx.HalfSquaredError(), bpx.HalfSquaredError(), bpx.MeanSquaredError()}) == 2


def test_host_targets_must_be_finite_numbers():
    backend = bpx.get_backend("numpy", dtype="float64")
    with pytest.raises(bpx.BpxValueError, match="targets"):
        bpx.MeanSquaredError().prepare_targets([[1.0], [math.nan]], backend, (1,))
    with pytest.raises(bpx.BpxTypeError, match="booleans"):
        bpx.MeanSquaredError().prepare_targets(np.array([[True], [False]]), backend, (1,))


def test_device_targets_are_type_checked_and_converted_to_the_master_dtype():
    backend = bpx.get_backend("torch", "cpu", "float64")
    loss = bpx.MeanSquaredError()
    prepared = loss.prepare_targets(torch.tensor([[1.0], [2.0]], dtype=torch.float32), backend, (1,))
    assert prepared.dtype == torch.float64 and prepared.tolist() == [[1.0], [2.0]]
    same = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    assert loss.prepare_targets(same, backend, (1,)).dtype == torch.float64
    assert loss.prepare_targets(torch.tensor([[1], [2]]), backend, (1,)).dtype == torch.float64
    with pytest.raises(bpx.BpxTypeError, match="real numbers"):
        loss.prepare_targets(torch.tensor([[True], [False]]), backend, (1,))


def test_binary_cross_entropy_checks_device_targets_once_per_fit():
    net = bpx.Sequential(bpx.Dense(2, 2), backend="torch", dtype="float64", seed=0)
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    result = net.evaluate(x, torch.tensor([[0.0, 1.0], [1.0, 0.5]], dtype=torch.float64), loss="bce")
    assert set(result) == {"loss", "accuracy"}
    with pytest.raises(bpx.BpxValueError, match=r"must lie in \[0, 1\]"):
        net.evaluate(x, torch.tensor([[0.0, 1.5], [1.0, 0.0]], dtype=torch.float64), loss="bce")
    with pytest.raises(bpx.BpxValueError, match=r"must lie in \[0, 1\]"):
        net.evaluate(x, torch.tensor([[0.0, -0.5], [1.0, 0.0]], dtype=torch.float64), loss="bce")


def test_label_range_is_checked_at_both_ends():
    check_label_range(np.array([0, 2]), 3)
    check_label_range(np.array([], dtype=np.int64), 3)
    with pytest.raises(bpx.BpxValueError, match="class label 3 is outside"):
        check_label_range(np.array([0, 3]), 3)
    with pytest.raises(bpx.BpxValueError, match="class label -1 is outside"):
        check_label_range(np.array([-1, 2]), 3)
