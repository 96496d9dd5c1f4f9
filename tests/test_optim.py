"""Optimizer trajectories against torch.optim fed the same gradients (an independent source),
on every backend, mutable (NumPy, torch, strict) and immutable (JAX) arrays alike."""

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


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_torch_optim(cfg, setting):
    ours_cls, theirs_cls, kwargs = SETTINGS[setting]
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(5)]
    backend = cfg.backend()
    param = bpx.Parameter("w", backend.asarray(w0, backend.dtype, copy=True))
    opt = ours_cls(**kwargs)
    tw = torch.tensor(w0, requires_grad=True)
    topt = theirs_cls([tw], **kwargs)
    for g in grads:
        param.grad = backend.asarray(g, backend.dtype)
        opt.step([param])
        tw.grad = torch.tensor(g)
        topt.step()
    assert_close(param.value, tw.detach().numpy(), dtype=cfg.dtype)


def test_frozen_and_gradless_parameters_are_left_alone():
    backend = bpx.get_backend("numpy", dtype="float64")
    frozen = bpx.Parameter("a", backend.asarray([1.0, 2.0]), trainable=False)
    frozen.grad = backend.asarray([1.0, 1.0])
    gradless = bpx.Parameter("b", backend.asarray([3.0]))
    bpx.SGD(lr=1.0).step([frozen, gradless])
    assert_close(frozen.value, [1.0, 2.0], rtol=0, atol=0)
    assert_close(gradless.value, [3.0], rtol=0, atol=0)


def test_jax_arrays_are_updated_by_rebinding():
    pytest.importorskip("jax")
    backend = bpx.get_backend("jax", dtype="float32")
    start = backend.asarray([1.0, 2.0])
    p = bpx.Parameter("w", start)
    p.grad = backend.asarray([1.0, 1.0])
    bpx.SGD(lr=0.5, momentum=0.5).step([p])
    assert_close(p.value, [0.5, 1.5])
    assert_close(start, [1.0, 2.0])  # immutable: the old array is untouched, the slot rebound


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, "learning rate must be a positive"),
    ({"lr": float("nan")}, "learning rate must be a positive"),
    ({"lr": 0.1, "momentum": 1.5}, "momentum must be in"),
    ({"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum"),
    ({"lr": 0.1, "weight_decay": -1}, "weight_decay must be in"),
])
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bpx.SGD(**kwargs)


def test_unknown_optimizer_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; valid names: sgd, adam, adamw"):
        bpx.get_optimizer("rmsprop")
    assert isinstance(bpx.get_optimizer("adam", lr=0.1), bpx.Adam)
