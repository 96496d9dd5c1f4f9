"""Targets that already live on the device (PyTorch tensors on the PyTorch backend) are checked
like host targets: their dtype (real numbers only) and their shape against the network's outputs."""

import numpy as np
import pytest

import bpx
from bpx.errors import ShapeError

torch = pytest.importorskip("torch")


def net():
    return bpx.Sequential(bpx.Dense(3, 2), backend="torch", dtype="float64", seed=0)


@pytest.mark.parametrize("loss", ["mse", "ce", "bce"])
def test_device_targets_of_the_wrong_shape_are_refused(loss):
    with pytest.raises(ShapeError, match=r"targets of shape \(4, 3\) do not fit the network's outputs \(2,\)"):
        net().prepare_targets(torch.zeros((4, 3), dtype=torch.float64), loss)


@pytest.mark.parametrize("dtype", ["bool", "complex128"])
def test_device_targets_that_are_not_real_numbers_are_refused(dtype):
    with pytest.raises(bpx.BpxTypeError, match=r"targets must be real numbers"):
        net().prepare_targets(torch.zeros((4, 2), dtype=getattr(torch, dtype)), "mse")


def test_device_integer_targets_become_the_master_dtype():
    t = net().prepare_targets(torch.tensor(np.array([[1, 0], [0, 1]])), "mse")
    assert t.dtype == torch.float64 and t.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def fit_once(loss, targets):
    x = torch.zeros((len(targets), 3), dtype=torch.float64)
    net().fit(x, targets, loss=loss, optimizer="sgd", epochs=1, verbose=0)


def test_device_one_hot_and_probability_rows_pass_the_cross_entropy_check():
    fit_once("ce", torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.25, 0.75]], dtype=torch.float64))


def test_a_negative_weight_in_device_cross_entropy_rows_is_refused():
    with pytest.raises(bpx.BpxValueError, match=r"rows must be non-negative weights .* got the value -0.25"):
        fit_once("ce", torch.tensor([[1.25, -0.25], [0.0, 1.0]], dtype=torch.float64))


def test_the_device_target_checks_accept_no_rows():
    empty = torch.zeros((0, 2), dtype=torch.float64)
    bpx.SoftmaxCrossEntropy().check_device_targets(empty, (2,), "targets")
    bpx.BinaryCrossEntropy().check_device_targets(empty, (2,), "targets")


@pytest.mark.parametrize("rows", [[[-0.5, 0.5]], [[0.5, 1.5]]])
def test_binary_cross_entropy_targets_outside_0_1_are_refused_on_host_and_device(rows):
    low, high = min(rows[0]), max(rows[0])
    message = rf"binary_cross_entropy: targets must lie in \[0, 1\], got values in \[{low}, {high}\]"
    with pytest.raises(bpx.BpxValueError, match=message):
        net().prepare_targets(np.array(rows), "bce")
    with pytest.raises(bpx.BpxValueError, match=message):
        fit_once("bce", torch.tensor(rows, dtype=torch.float64))


def test_binary_cross_entropy_host_targets_are_checked_finite_before_their_range():
    with pytest.raises(bpx.BpxValueError, match=r"targets holds a non-finite value \(inf\) at index \(0, 1\)"):
        net().prepare_targets(np.array([[0.5, np.inf]]), "bce")
    assert net().prepare_targets(np.zeros((0, 2)), "bce").shape == (0, 2)
