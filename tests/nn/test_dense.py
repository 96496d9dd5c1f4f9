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
