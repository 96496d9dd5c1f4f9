"""Optimizer trajectories against torch.optim fed the same gradients (an independent source), on
every backend, mutable (NumPy, torch, strict) and immutable (JAX) arrays alike; flat-buffer
updates with frozen parameters and a changing trainable set; binding to one network."""

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close, backend_params

torch = pytest.importorskip("torch")
CASES = backend_params()
SETTINGS = {
    "sgd": (bpx.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd-momentum": (bpx.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "sgd-nesterov-decay": (bpx.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True,
                                                      "weight_decay": 0.01}),
    "adam": (bpx.Adam, torch.optim.Adam, {"lr": 0.01}),
    "adam-decay": (bpx.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    "adamw": (bpx.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
}


def two_layer(cfg, w0, v0):
    return bpx.Sequential(bpx.Dense(3, 4, weight=w0, use_bias=False), bpx.Dense(4, 2, weight=v0),
                          backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=0)


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_torch_optim(cfg, setting):
    ours_cls, theirs_cls, kwargs = SETTINGS[setting]
    rng = np.random.default_rng(0)
    w0, v0 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    net = two_layer(cfg, w0, v0)
    opt = ours_cls(**kwargs)
    tensors = [torch.tensor(w0, requires_grad=True), torch.tensor(v0, requires_grad=True),
               torch.zeros(2, dtype=torch.float64, requires_grad=True)]
    topt = theirs_cls(tensors, **kwargs)
    for lr in (kwargs["lr"], kwargs["lr"], kwargs["lr"] / 2, kwargs["lr"] / 2, kwargs["lr"] / 4):  # a schedule
        grads = [rng.normal(size=t.shape) for t in tensors]
        opt.lr = lr
        for group in topt.param_groups:
            group["lr"] = lr
        opt.update(net.store, net.backend.asarray(np.concatenate([g.ravel() for g in grads])))
        for t, g in zip(tensors, grads, strict=True):
            t.grad = torch.tensor(g)
        topt.step()
    for p, t in zip(net.parameters(), tensors, strict=True):
        assert_close(p.value, t.detach().numpy(), dtype=cfg.dtype)
    assert opt.iterations == 5


@pytest.mark.parametrize("cfg", CASES)
def test_frozen_parameters_keep_their_values_and_unfreezing_keeps_state(cfg):
    rng = np.random.default_rng(1)
    w0, v0 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    net = two_layer(cfg, w0, v0)
    first, second, bias = net.parameters()
    second.trainable = False
    opt = bpx.SGD(lr=0.1, momentum=0.9, weight_decay=0.1)  # weight decay would move a frozen weight
    g1 = rng.normal(size=(3 * 4 + 2,))
    opt.update(net.store, net.backend.asarray(g1))
    assert_close(second.value, v0.astype(cfg.dtype), rtol=0, atol=0)
    expected_first = w0 - 0.1 * (g1[:12].reshape(3, 4) + 0.1 * w0)
    assert_close(first.value, expected_first, dtype=cfg.dtype)
    velocity = {first: g1[:12].reshape(3, 4) + 0.1 * w0, bias: g1[12:]}  # the bias started at 0
    second.trainable = True  # layout changes: the first weight keeps its velocity, the second starts at 0
    g2 = rng.normal(size=(12 + 8 + 2,))
    before = {p: bpx.to_host(p.value).copy() for p in net.parameters()}
    opt.update(net.store, net.backend.asarray(g2))
    order = net.store.trainable  # the flat layout: trainable parameters in network order
    offsets = net.store.slices()
    for p in order:
        start, stop = offsets[p]
        g = g2[start:stop].reshape(p.shape) + 0.1 * before[p]
        v = 0.9 * velocity[p] + g if p in velocity else g
        assert_close(p.value, before[p] - 0.1 * v, dtype=cfg.dtype, err_msg=p.name)


def test_optimizer_refuses_a_second_network_until_reset():
    a = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    b = bpx.Sequential(bpx.Dense(2, 2), seed=1)
    opt = bpx.SGD(lr=0.1, momentum=0.9)
    a.train_step([[1.0, 2.0]], [0], "softmax_cross_entropy", opt)
    with pytest.raises(bpx.StateError, match="another network"):
        b.train_step([[1.0, 2.0]], [0], "softmax_cross_entropy", opt)
    opt.reset()
    b.train_step([[1.0, 2.0]], [0], "softmax_cross_entropy", opt)
    assert opt.iterations == 1


def test_jax_arrays_are_updated_by_rebinding():
    pytest.importorskip("jax")
    net = bpx.Sequential(bpx.Dense(1, 2, weight=[[1.0, 2.0]], use_bias=False), backend="jax", seed=0)
    start = net.store.values
    bpx.SGD(lr=0.5, momentum=0.5).update(net.store, net.backend.asarray([1.0, 1.0]))
    assert_close(net.layers[0].weight.value, [[0.5, 1.5]])
    assert_close(start, [1.0, 2.0])  # immutable: the old buffer is untouched, the store rebound


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lr": 0.0}, bpx.BpxValueError, "lr must be > 0"),
    ({"lr": float("nan")}, bpx.BpxValueError, "lr must be finite"),
    ({"lr": "fast"}, bpx.BpxTypeError, "lr must be a number, got 'fast'"),
    ({"lr": 0.1, "momentum": 1.5}, bpx.BpxValueError, "momentum must be < 1"),
    ({"lr": 0.1, "nesterov": True}, bpx.BpxValueError, "nesterov=True needs momentum"),
    ({"lr": 0.1, "weight_decay": -1}, bpx.BpxValueError, "weight_decay must be >= 0"),
])
def test_bad_hyperparameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        bpx.SGD(**kwargs)


def test_unknown_optimizer_name_lists_valid_names():
    with pytest.raises(bpx.BpxValueError, match="unknown optimizer 'rmsprop'; valid names: sgd, adam, adamw"):
        bpx.get_optimizer("rmsprop")
    assert isinstance(bpx.get_optimizer("adam", lr=0.1), bpx.Adam)
