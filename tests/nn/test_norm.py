"""BatchNorm, BatchNorm2D and LayerNorm against PyTorch's modules in float64 (an independent
source): outputs and gradients (input, weight, bias) in training and inference mode, running
statistics over several steps, on every backend; plus validation, shapes and the train/infer
switch through fit, evaluate and predict. Gradients against central differences on every backend
are in the layer contract test."""

import numpy as np
import pytest

import bpx
from bpx.nn.parameter import Gradients
from bpx.testing import assert_close, backend_params

torch = pytest.importorskip("torch")
F64 = backend_params(dtypes=("float64",))

#: (bpx layer, torch module, per-sample input shape) for each normalisation under test.
KINDS = {
    "batch_norm": (lambda: bpx.BatchNorm(5, momentum=0.2, eps=1e-3),
                   lambda: torch.nn.BatchNorm1d(5, momentum=0.2, eps=1e-3, dtype=torch.float64), (5,)),
    "batch_norm_2d": (lambda: bpx.BatchNorm2D(3),
                      lambda: torch.nn.BatchNorm2d(3, dtype=torch.float64), (3, 4, 5)),
    "layer_norm": (lambda: bpx.LayerNorm(5), lambda: torch.nn.LayerNorm(5, dtype=torch.float64), (5,)),
    "layer_norm_seq": (lambda: bpx.LayerNorm(4, eps=1e-4),
                       lambda: torch.nn.LayerNorm(4, eps=1e-4, dtype=torch.float64), (3, 4)),
}


def passes(net, x, g, training):
    """Outputs, ∂E/∂x and ``{name: ∂E/∂param}`` of one forward/backward pass of ``net`` (host arrays)."""
    ctx = net.context(training=training)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    grads = Gradients(net.store)
    gx = net.backward(passed, net.backend.asarray(g, net.backend.dtype, copy=True), grads, ctx,
                      need_input_grad=True)
    flat = bpx.to_host(grads.flat())
    slices = net.store.slices()
    params = {name: flat[slices[p][0]:slices[p][1]].reshape(p.shape) for name, p in net.named_parameters().items()}
    return bpx.to_host(passed.outputs), bpx.to_host(gx), params


def reference(module, x, g):
    """The same from PyTorch autograd (the module's mode decides training or inference)."""
    module.weight.grad = module.bias.grad = None
    xt = torch.tensor(x, requires_grad=True)
    y = module(xt)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy(), {"layers.0.weight": module.weight.grad.numpy(),
                                                 "layers.0.bias": module.bias.grad.numpy()}


def assert_same(got, want, what):
    (y, gx, gp), (ry, rgx, rgp) = got, want
    assert_close(y, ry, dtype="float64", err_msg=f"{what}: outputs")
    assert_close(gx, rgx, dtype="float64", err_msg=f"{what}: input gradient")
    for name in rgp:
        assert_close(gp[name], rgp[name], dtype="float64", err_msg=f"{what}: {name}")


@pytest.mark.parametrize("cfg", F64)
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch_in_training_and_inference(kind, cfg):
    make, make_torch, shape = KINDS[kind]
    rng = np.random.default_rng(0)
    layer = make()
    net = bpx.Sequential(layer, backend=cfg.name, device=cfg.device, dtype="float64", input_shape=shape, seed=0)
    module = make_torch()
    weight, bias = rng.uniform(0.5, 2.0, size=layer.features), rng.normal(size=layer.features)
    layer.weight.value, layer.bias.value = weight, bias
    with torch.no_grad():
        module.weight.copy_(torch.tensor(weight))
        module.bias.copy_(torch.tensor(bias))
    buffers = net.named_buffers()
    module.train()
    for step in range(4):  # batch statistics; the running ones move every step
        x = 3.0 + rng.normal(scale=2.0, size=(6, *shape))
        g = rng.normal(size=(6, *shape))
        assert_same(passes(net, x, g, training=True), reference(module, x, g), f"training step {step}")
        if buffers:
            assert_close(buffers["layers.0.running_mean"].value, module.running_mean.numpy(), dtype="float64")
            assert_close(buffers["layers.0.running_var"].value, module.running_var.numpy(), dtype="float64")
    module.eval()
    for n in (1, 7):  # inference takes any batch size, one sample included
        x = 3.0 + rng.normal(scale=2.0, size=(n, *shape))
        g = rng.normal(size=(n, *shape))
        assert_same(passes(net, x, g, training=False), reference(module, x, g), f"inference, batch {n}")
        assert_close(net.predict(x), module(torch.tensor(x)).detach().numpy(), dtype="float64")


def test_batch_norm_running_statistics_use_unbiased_variance():
    net = bpx.Sequential(bpx.BatchNorm(2, momentum=1.0), backend="numpy", dtype="float64")
    x = np.array([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]])
    before = net.state_dict()
    y = net.forward(x, training=True)  # training-mode outputs; the running statistics are left alone
    assert all(np.array_equal(v, net.state_dict()[k]) for k, v in before.items())
    net.forward_pass(net.prepare_inputs(x), net.context(training=True))  # what a training step runs
    state = net.state_dict()
    np.testing.assert_allclose(state["layers.0.running_mean"], [3.0, 1.0])
    np.testing.assert_allclose(state["layers.0.running_var"], np.var(x, axis=0, ddof=1))
    np.testing.assert_allclose(bpx.to_host(y), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5))  # biased


@pytest.mark.parametrize("make, shape", [(lambda: bpx.BatchNorm(3), (3,)), (lambda: bpx.BatchNorm2D(3), (3, 1, 1))])
def test_batch_norm_refuses_one_value_per_feature_in_training(make, shape):
    net = bpx.Sequential(make(), backend="numpy", dtype="float64", input_shape=shape)
    x = np.ones((1, *shape))
    with pytest.raises(bpx.BpxValueError, match="more than one value per feature"):
        net.forward(x, training=True)
    assert bpx.to_host(net.forward(x)).shape == (1, *shape)  # inference is fine
    assert bpx.to_host(net.forward(np.ones((2, *shape)), training=True)).shape == (2, *shape)


def test_batch_norm_2d_takes_one_image_in_training():
    net = bpx.Sequential(bpx.BatchNorm2D(2), backend="numpy", dtype="float64", input_shape=(2, 3, 3))
    y = bpx.to_host(net.forward(np.random.default_rng(0).normal(size=(1, 2, 3, 3)), training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)


@pytest.mark.parametrize("make, shape, match", [
    (lambda: bpx.BatchNorm(4), (5,), "expects 4 features"),
    (lambda: bpx.BatchNorm(3), (3, 8, 8), "use BatchNorm2D"),
    (lambda: bpx.BatchNorm2D(3), (3,), r"\(3, H, W\)"),
    (lambda: bpx.BatchNorm2D(3), (4, 8, 8), r"\(3, H, W\)"),
    (lambda: bpx.LayerNorm(4), (4, 5), "last axis of 4"),
])
def test_shapes_are_checked_when_the_network_is_built(make, shape, match):
    with pytest.raises(bpx.ShapeError, match=match):
        bpx.Sequential(make(), backend="numpy", input_shape=shape)


@pytest.mark.parametrize("call, error, match", [
    (lambda: bpx.BatchNorm(0), bpx.BpxValueError, "BatchNorm features"),
    (lambda: bpx.BatchNorm(3.0), bpx.BpxTypeError, "BatchNorm features"),
    (lambda: bpx.BatchNorm(3, momentum=1.5), bpx.BpxValueError, "BatchNorm momentum"),
    (lambda: bpx.BatchNorm(3, momentum=-0.1), bpx.BpxValueError, "BatchNorm momentum"),
    (lambda: bpx.BatchNorm(3, eps=0.0), bpx.BpxValueError, "BatchNorm eps"),
    (lambda: bpx.BatchNorm2D(3, eps=float("nan")), bpx.BpxValueError, "BatchNorm2D eps"),
    (lambda: bpx.BatchNorm(3, train_bias=1), bpx.BpxTypeError, "BatchNorm train_bias"),
    (lambda: bpx.LayerNorm(-2), bpx.BpxValueError, "LayerNorm features"),
    (lambda: bpx.LayerNorm(2, eps="1e-5"), bpx.BpxTypeError, "LayerNorm eps"),
])
def test_arguments_are_validated(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_frozen_parameters_get_no_gradient_and_survive_config():
    layer = bpx.BatchNorm(3, train_weight=False)
    net = bpx.Sequential(bpx.Dense(2, 3, use_bias=False), layer, backend="numpy", dtype="float64")
    assert [p.trainable for p in layer.parameters()] == [False, True]
    assert layer.config() == {"features": 3, "eps": 1e-5, "train_weight": False, "momentum": 0.1}
    twin = bpx.Sequential.from_config(net.config(), backend="numpy")
    assert not twin.layers[1].weight.trainable
    rng = np.random.default_rng(0)
    result = bpx.gradcheck(net, rng.normal(size=(5, 2)), rng.normal(size=(5, 3)), "half_squared_error")
    assert result.ok, result.report()
    assert "layers.1.weight" not in [c.name for c in result.checks]


def test_batch_norm_modes_through_fit_evaluate_and_predict():
    """fit trains with batch statistics and moves the running ones; predict and evaluate use the
    running statistics; forward(training=True) uses the batch's."""
    rng = np.random.default_rng(0)
    x = rng.normal(loc=4.0, scale=3.0, size=(64, 3))
    y = x @ rng.normal(size=(3, 2))
    bn = bpx.BatchNorm(3)
    net = bpx.Sequential(bn, bpx.Dense(3, 2), backend="numpy", dtype="float64", seed=0)
    net.fit(x, y, loss="half_squared_error", optimizer=bpx.SGD(lr=0.05), epochs=2, batch_size=16, verbose=0)
    state = net.state_dict()
    assert net.step_count == 8
    assert not np.allclose(state["layers.0.running_mean"], 0.0)  # moved towards the data's mean
    w, b = state["layers.1.weight"], state["layers.1.bias"]
    normalised = (x - state["layers.0.running_mean"]) / np.sqrt(state["layers.0.running_var"] + 1e-5)
    normalised = normalised * state["layers.0.weight"] + state["layers.0.bias"]
    expected = normalised @ w + b
    np.testing.assert_allclose(bpx.to_host(net.predict(x)), expected, rtol=1e-12, atol=1e-12)
    loss = net.evaluate(x, y)["loss"]
    np.testing.assert_allclose(loss, 0.5 * np.sum((expected - y) ** 2) / len(x), rtol=1e-12)
    np.testing.assert_allclose(net.state_dict()["layers.0.running_mean"], state["layers.0.running_mean"])
    batch = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) * state["layers.0.weight"] + state["layers.0.bias"]
    np.testing.assert_allclose(bpx.to_host(net.forward(x, training=True)), batch @ w + b, rtol=1e-12, atol=1e-12)


def test_compiled_jax_step_carries_the_running_statistics():
    """fit(compile=True) on JAX (traced buffers) gives what the eager NumPy loop gives."""
    pytest.importorskip("jax")
    rng = np.random.default_rng(1)
    x, y = rng.normal(loc=2.0, size=(40, 4)), rng.normal(size=(40, 2))
    nets = {}
    for backend, compile in (("numpy", False), ("jax", True)):
        net = bpx.Sequential(bpx.Dense(4, 6), bpx.BatchNorm(6), bpx.Tanh(), bpx.Dense(6, 2), backend=backend,
                             dtype="float64", seed=3)
        net.fit(x, y, loss="half_squared_error", optimizer=bpx.SGD(lr=0.1, momentum=0.9), epochs=2, batch_size=8,
                verbose=0, compile=compile)
        nets[backend] = net.state_dict()
    for name, value in nets["numpy"].items():
        assert_close(nets["jax"][name], value, dtype="float64", factor=16, err_msg=name)
