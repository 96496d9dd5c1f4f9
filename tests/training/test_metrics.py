"""Accuracy as documented in bpx.training.metrics, counted by hand on outputs fixed by the weights
(an identity Dense layer: the outputs are the inputs)."""

import numpy as np

import bpx


def identity_net(k):
    return bpx.Sequential(bpx.Dense(k, k, weight=np.eye(k), bias=np.zeros(k)), dtype="float64", seed=0)


def test_multi_label_decisions_are_logit_above_0_against_target_at_least_one_half():
    """Boundaries: a logit of exactly 0 decides "no"; a target of exactly 0.5 means "yes"."""
    z = np.array([[0.0, 1.0], [0.5, -1.0], [1.0, 3.0]])
    t = np.array([[0.0, 1.0], [0.5, 0.0], [1.0, 0.4]])
    # per row: (no=no, yes=yes) ok; (yes vs 0.5=yes, no=no) ok; (yes=yes, yes vs 0.4=no) wrong
    assert identity_net(2).evaluate(z, t, loss="bce")["accuracy"] == 2 / 3


def test_single_label_accuracy_against_soft_target_rows_uses_their_argmax():
    z = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 5.0, 0.0]])
    t = np.array([[0.6, 0.3, 0.1], [0.1, 0.7, 0.2], [0.2, 0.5, 0.3]])
    assert identity_net(3).evaluate(z, t, loss="ce")["accuracy"] == 2 / 3


def test_squared_error_accuracy_needs_several_outputs_and_then_compares_argmaxes():
    import pytest

    one = bpx.Sequential(bpx.Dense(1, 1, weight=np.eye(1), bias=np.zeros(1)), dtype="float64", seed=0)
    with pytest.raises(bpx.BpxValueError, match=r"accuracy needs class labels or rows of several outputs"):
        one.evaluate(np.ones((3, 1)), np.ones((3, 1)), loss="mse", metrics=["accuracy"])
    z = np.array([[2.0, 1.0], [0.0, 1.0], [3.0, -1.0]])
    t = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # argmax agrees in the first row only
    assert identity_net(2).evaluate(z, t, loss="mse", metrics=["accuracy"])["accuracy"] == 1 / 3
