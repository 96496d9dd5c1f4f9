"""Initialisation: drawn on the host from a seed, so one seed gives the same weights everywhere."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close, backend_params

CASES = backend_params()


def make(cfg, seed=123, init="glorot_uniform"):
    return bpx.Sequential(bpx.Dense(7, 5, init=init), bpx.Tanh(), bpx.Dense(5, 3, init="he_normal"),
                          backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=seed)


@pytest.mark.parametrize("cfg", CASES)
def test_same_seed_same_weights_on_every_backend(cfg):
    reference = make(bpx.testing.BackendConfig("numpy", None, "float64"))
    net = make(cfg)
    for name, value in net.state_dict().items():
        assert_close(value, reference.state_dict()[name], dtype=cfg.dtype)
        assert bpx.to_host(net.named_parameters()[name].value).dtype == np.dtype(cfg.dtype)


@pytest.mark.parametrize("cfg", CASES)
def test_every_parameter_lives_on_the_network_device(cfg):
    net = make(cfg)
    backend = net.backend
    for p in net.parameters():
        backend.check_array(p.value, p.name)


def test_different_seeds_differ_and_statistics_are_right():
    cfg = bpx.testing.BackendConfig("numpy", None, "float64")
    a, b = make(cfg, seed=1).state_dict(), make(cfg, seed=2).state_dict()
    assert not np.array_equal(a["layers.0.weight"], b["layers.0.weight"])
    big = bpx.Sequential(bpx.Dense(400, 300, init="he_normal"), dtype="float64", seed=0).state_dict()
    assert abs(big["layers.0.weight"].std() - np.sqrt(2 / 400)) < 0.002
    assert np.all(big["layers.0.bias"] == 0)


def test_explicit_values_are_copied_not_aliased():
    w = np.array([[1.0, 2.0]])
    net = bpx.Sequential(bpx.Dense(1, 2, weight=w, bias=[0.5, -0.5]), dtype="float64")
    net.train_step([[1.0]], [[0.0, 0.0]], "mse", bpx.SGD(lr=0.1))
    assert_close(w, [[1.0, 2.0]], rtol=0, atol=0)


def test_explicit_torch_tensor_is_not_modified():
    torch = pytest.importorskip("torch")
    w = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    net = bpx.Sequential(bpx.Dense(1, 2, weight=w), backend="torch", dtype="float64")
    net.train_step(torch.tensor([[1.0]], dtype=torch.float64), [[0.0, 0.0]], "mse", bpx.SGD(lr=0.1))
    assert w.tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"weight": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}, r"expected shape \(3, 2\).*transpose"),
    ({"weight": [[1.0, float("nan")]] * 3}, "finite"),
    ({"bias": [1.0, 2.0, 3.0]}, r"Dense bias: expected shape \(2,\)"),
    ({"init": "orthogonal"}, "unknown initialiser 'orthogonal'"),
])
def test_bad_explicit_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bpx.Dense(3, 2, **kwargs)


def test_mlp_builder():
    net = bpx.mlp([4, 8, 8, 3], "tanh", "sigmoid", dtype="float64", seed=0)
    assert [type(layer).__name__ for layer in net.layers] == ["Dense", "Tanh", "Dense", "Tanh", "Dense", "Sigmoid"]
    assert net.layers[0].init == "glorot_uniform" and bpx.mlp([4, 3]).n_parameters == 15
    assert bpx.mlp([4, 5, 3]).layers[0].init == "he_uniform"
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bpx.mlp([4, 3], "gelu")
    with pytest.raises(ValueError, match="at least input and output"):
        bpx.mlp([4])


@pytest.mark.parametrize("name, std, bound", [
    ("glorot_uniform", np.sqrt(2 / (600 + 300)), np.sqrt(6 / (600 + 300))),
    ("glorot_normal", np.sqrt(2 / (600 + 300)), None),
    ("he_uniform", np.sqrt(2 / 600), np.sqrt(6 / 600)),
    ("he_normal", np.sqrt(2 / 600), None),
    ("lecun_normal", np.sqrt(1 / 600), None),
])
def test_each_initialiser_has_its_closed_form_scale(name, std, bound):
    """Closed forms (Glorot & Bengio 2010; He et al. 2015; LeCun 1998) for a 600→300 weight:
    180,000 draws pin the standard deviation to about 0.2 %."""
    w = bpx.Sequential(bpx.Dense(600, 300, init=name), dtype="float64", seed=0).state_dict()["layers.0.weight"]
    assert abs(w.std() / std - 1) < 0.01 and abs(w.mean()) < 0.01 * std
    if bound is not None:  # uniform: everything inside ±bound, and the edges reached
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
    else:  # normal: about 4.55 % of the draws beyond two standard deviations
        assert abs(np.mean(np.abs(w) > 2 * std) - 0.0455) < 0.003
