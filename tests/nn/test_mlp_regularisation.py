"""``bpx.mlp``'s regularisation options (dropout, batch_norm, input_dropout): the layer order,
the unchanged default, validation, and a short real-MNIST run of the example (slow)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def kinds(net):
    return [type(layer).__name__ for layer in net.layers]


def test_layer_order_and_bias_free_dense_before_batch_norm():
    net = bpx.mlp([6, 8, 8, 3], dropout=0.25, batch_norm=True, input_dropout=0.1, seed=0)
    assert kinds(net) == ["Dropout", "Dense", "BatchNorm", "ReLU", "Dropout", "Dense", "BatchNorm", "ReLU", "Dropout",
                          "Dense"]
    assert net.layers[0].rate == 0.1 and net.layers[4].rate == 0.25
    assert [net.layers[i].use_bias for i in (1, 5, 9)] == [False, False, True]
    assert net.input_shape == (6,)
    assert kinds(bpx.mlp([6, 8, 3], "tanh", dropout=0.5)) == ["Dense", "Tanh", "Dropout", "Dense"]
    assert kinds(bpx.mlp([6, 8, 3], batch_norm=True)) == ["Dense", "BatchNorm", "ReLU", "Dense"]


def test_options_off_build_the_plain_network():
    plain = bpx.mlp([6, 8, 8, 3], seed=0)
    same = bpx.mlp([6, 8, 8, 3], seed=0, dropout=0.0, batch_norm=False, input_dropout=0.0)
    assert plain.config() == same.config()
    assert kinds(plain) == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(same.state_dict()[name], value)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"dropout": 1.0}, bpx.BpxValueError, "mlp dropout"),
    ({"input_dropout": -0.5}, bpx.BpxValueError, "mlp input_dropout"),
    ({"batch_norm": 1}, bpx.BpxTypeError, "mlp batch_norm"),
    ({"dropout": "0.1"}, bpx.BpxTypeError, "mlp dropout"),
])
def test_options_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        bpx.mlp([4, 5, 3], **kwargs)


def test_regularised_mlp_trains_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    net = bpx.mlp([6, 16, 2], dropout=0.2, batch_norm=True, input_dropout=0.1, dtype="float64", seed=1)
    history = net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.Adam(lr=0.01), epochs=15, batch_size=16,
                      verbose=0)
    assert history.last()["loss"] < history["loss"][0]
    assert net.evaluate(x, y)["accuracy"] > 0.9
    again = bpx.load(net.save(tmp_path / "reg.npz"))
    np.testing.assert_array_equal(bpx.to_host(again.predict(x)), bpx.to_host(net.predict(x)))
    assert again.step_count == net.step_count


@pytest.mark.slow
def test_mnist_regularised_example_runs_one_epoch(shared_mnist):
    result = subprocess.run([sys.executable, str(EXAMPLES / "mnist_regularised.py"), "--data-dir", str(shared_mnist),
                             "--epochs", "1", "--hidden", "128", "--limit", "6000"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("test accuracy ")[1].split("%")[0]) > 88
