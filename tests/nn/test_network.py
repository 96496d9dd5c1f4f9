"""The Network: weight tying against PyTorch autograd, parameters as views of one flat buffer on
every backend, layer ownership, shape inference, configuration and state round trips, and the
refusal of non-finite or unrepresentable parameter values."""

import gc

import numpy as np
import pytest

import bpx
from bpx.nn.parameter import Gradients
from bpx.testing import assert_close, backend_params

CASES = backend_params()


def torch_reference_tied(w, b, x, t):
    """Gradients of E = ½ Σ (tanh(x W + b) W + b − t)² / n with W, b used twice (torch autograd)."""
    torch = pytest.importorskip("torch")
    W = torch.tensor(w, requires_grad=True)
    B = torch.tensor(b, requires_grad=True)
    X, T = torch.tensor(x), torch.tensor(t)
    out = torch.tanh(X @ W + B) @ W + B
    loss = 0.5 * ((out - T) ** 2).sum() / x.shape[0]
    loss.backward()
    return loss.item(), W.grad.numpy(), B.grad.numpy()


@pytest.mark.parametrize("cfg", CASES)
def test_a_layer_used_twice_gets_the_sum_of_its_gradients(cfg):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 4)), rng.normal(size=4)
    x, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    dense = bpx.Dense(4, 4, weight=w, bias=b)
    net = bpx.Sequential(dense, bpx.Tanh(), dense, backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=0)
    assert net.parameters() == [dense.weight, dense.bias]  # listed once
    assert list(net.named_parameters()) == ["layers.0.weight", "layers.0.bias"]
    value = net.train_step(x, t, "half_squared_error", bpx.SGD(lr=0.5))
    ref_value, ref_w, ref_b = torch_reference_tied(w, b, x, t)
    assert_close(value, ref_value, dtype=cfg.dtype)
    assert_close(dense.weight.grad, ref_w, dtype=cfg.dtype)
    assert_close(dense.bias.grad, ref_b, dtype=cfg.dtype)
    assert_close(dense.weight.value, w - 0.5 * ref_w, dtype=cfg.dtype)


def test_sharing_survives_copies_and_checkpoints(tmp_path):
    dense = bpx.Dense(3, 3)
    net = bpx.Sequential(dense, bpx.ReLU(), dense, bpx.Dense(3, 2), seed=0)
    assert net.config()["layers"][2] == {"same_as": 0}
    for twin in (net.to("numpy", dtype="float64"), bpx.load(net.save(tmp_path / "tied.npz"))):
        assert twin.layers[0] is twin.layers[2] and twin.layers[0] is not dense
        assert len(twin.parameters()) == 4
        assert_close(twin.predict([[1.0, -2.0, 0.5]]), net.predict([[1.0, -2.0, 0.5]]), dtype="float32")
    assert "same layer as layers[0]" in str(net.summary())


def test_a_layer_belongs_to_one_network():
    dense = bpx.Dense(2, 2)
    first = bpx.Sequential(dense, seed=0)
    with pytest.raises(bpx.BpxValueError, match=r"layers\[0\] \(Dense\) already belongs to another network"):
        bpx.Sequential(dense, seed=0)
    del first
    gc.collect()
    assert bpx.Sequential(dense, seed=0).layers[0] is dense  # free again once the first network is gone


@pytest.mark.parametrize("cfg", CASES)
def test_parameters_are_views_of_one_flat_buffer(cfg):
    net = bpx.Sequential(bpx.Dense(3, 4), bpx.ReLU(), bpx.Dense(4, 2), backend=cfg.name, device=cfg.device,
                         dtype=cfg.dtype, seed=0)
    store = net.store
    assert store.size == 3 * 4 + 4 + 4 * 2 + 2 == net.n_parameters
    flat = bpx.to_host(store.values).copy()
    offsets = store.slices()
    for p in net.parameters():
        start, stop = offsets[p]
        assert np.array_equal(bpx.to_host(p.value).ravel(), flat[start:stop])
    # one update of the flat buffer reaches every parameter (in place, or by rebinding on JAX)
    grads = net.backend.asarray(np.ones(store.trainable_size))
    bpx.SGD(lr=0.5).update(store, grads)
    for p in net.parameters():
        start, stop = offsets[p]
        assert_close(p.value, (flat[start:stop] - 0.5).reshape(p.shape), dtype=cfg.dtype)
    # and assigning a parameter writes into the buffer
    net.layers[2].bias.value = [7.0, 8.0]
    start, stop = offsets[net.layers[2].bias]
    assert np.array_equal(bpx.to_host(store.values)[start:stop], [7.0, 8.0])


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float64",)))
def test_gradients_land_in_the_flat_buffer_whatever_the_backend_path(cfg):
    """NumPy/torch write with matmul(out=); strict copies; JAX collects and joins: same numbers."""
    rng = np.random.default_rng(2)
    w, v = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    net = bpx.Sequential(bpx.Dense(3, 4, weight=w), bpx.Dense(4, 2, weight=v), backend=cfg.name,
                         device=cfg.device, dtype="float64", seed=0)
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    _, g = net.resolve_loss("hse").value_and_grad(passed.outputs, net.prepare_targets(t, "hse"), ctx)
    grads = Gradients(net.store)
    net.backward(passed, g, grads, ctx)
    flat = bpx.to_host(grads.flat())
    h = x @ w
    d_out = (h @ v - t) / 6
    expected = np.concatenate([(x.T @ (d_out @ v.T)).ravel(), (d_out @ v.T).sum(0), (h.T @ d_out).ravel(),
                               d_out.sum(0)])
    assert_close(flat, expected, dtype="float64")


def test_freezing_changes_the_layout_and_keeps_the_values():
    net = bpx.Sequential(bpx.Dense(2, 3), bpx.Dense(3, 1), seed=0)
    before = net.state_dict()
    net.layers[0].weight.trainable = False
    assert net.store.slices()  # the layout is rebuilt lazily
    assert net.store.trainable_size == 3 + 3 + 1
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())
    net.train_step([[1.0, 2.0]], [[0.5]], "mse", "sgd")
    assert net.layers[0].weight.grad is None and net.layers[1].weight.grad is not None
    assert np.array_equal(net.state_dict()["layers.0.weight"], before["layers.0.weight"])


def test_shapes_are_checked_when_the_network_is_built():
    with pytest.raises(bpx.ShapeError, match=r"layers\[2\] Dense: Dense\(5, 2\) expects 5 input features.*\(4,\)"):
        bpx.Sequential(bpx.Dense(3, 4), bpx.ReLU(), bpx.Dense(5, 2))
    with pytest.raises(bpx.ShapeError, match=r"cannot infer the input shape from the first layer.*input_shape="):
        bpx.Sequential(bpx.ReLU(), bpx.Dense(3, 2))
    net = bpx.Sequential(bpx.ReLU(), bpx.Dense(3, 2), input_shape=(3,), seed=0)
    assert net.input_shape == (3,) and net.output_shape == (2,)
    with pytest.raises(bpx.ShapeError, match=r"x: expected shape \(n_samples, 3\), got \(3,\); for one sample"):
        net.predict([1.0, 2.0, 3.0])


def test_summary_lists_shapes_and_counts():
    net = bpx.Sequential(bpx.Dense(784, 32), bpx.ReLU(), bpx.Dense(32, 10, train_bias=False), seed=0)
    text = str(net.summary())
    assert "(n, 784)" in text and "(n, 32)" in text and "(n, 10)" in text
    assert "25,120" in text and "330 (10 frozen)" in text
    assert "total: 25,450 parameters (25,440 trainable, 10 frozen)" in text


@pytest.mark.parametrize("build, message", [
    (lambda: bpx.Dense(2, 2, weight=float("nan")), "Dense weight|weight: values must be finite"),
    (lambda: bpx.Dense(2, 2, bias=float("inf")), "bias: values must be finite"),
    (lambda: bpx.Dense(2, 2, weight="abc"), "expected numbers"),
    (lambda: bpx.Dense(2, 2, weight=[[1.0, 2.0]]), r"expected shape \(2, 2\), got \(1, 2\)"),
    (lambda: bpx.Dense(2, 3, weight=np.ones((3, 2))), "did you pass the transpose"),
    (lambda: bpx.Dense(0, 2), "in_features must be >= 1"),
    (lambda: bpx.Dense(2.5, 2), "in_features must be an int"),
    (lambda: bpx.LeakyReLU("a"), "negative_slope must be a number"),
])
def test_bad_layer_arguments(build, message):
    with pytest.raises(bpx.BpxError, match=message):
        build()


def test_initialisers_that_return_bad_values_are_refused():
    with pytest.raises(bpx.BpxValueError, match=r"weight.*finite"):
        bpx.Sequential(bpx.Dense(2, 2, init=lambda rng, shape: np.full(shape, np.nan)), seed=0)
    with pytest.raises(bpx.ShapeError, match=r"weight \(from its initialiser\): expected shape \(2, 2\)"):
        bpx.Sequential(bpx.Dense(2, 2, init=lambda rng, shape: np.zeros(3)), seed=0)


def test_load_state_dict_refuses_nan_wrong_names_and_overflow():
    net = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    state = net.state_dict()
    with pytest.raises(bpx.BpxValueError, match=r"missing \['layers.0.bias'\]"):
        net.load_state_dict({"layers.0.weight": state["layers.0.weight"]})
    with pytest.raises(bpx.BpxValueError, match=r"layers\.0\.weight: values must be finite"):
        net.load_state_dict({**state, "layers.0.weight": np.full((2, 2), np.nan)})
    with pytest.raises(bpx.BpxValueError, match=r"layers.0.bias: the value 1e\+300 overflows to inf in float32"):
        net.load_state_dict({**state, "layers.0.bias": np.array([1e300, 0.0])})
    big = bpx.Sequential(bpx.Dense(2, 2, weight=1e300), dtype="float64", seed=0)
    with pytest.raises(bpx.BpxValueError, match="overflows to inf in float32"):
        big.to(dtype="float32")
    with pytest.raises(bpx.BpxValueError, match="values must be finite"):
        net.layers[0].weight.value = np.full((2, 2), np.inf)
    assert all(np.array_equal(state[k], v) for k, v in net.state_dict().items())  # nothing changed


def test_seed_none_draws_a_seed_that_reproduces_the_network():
    net = bpx.Sequential(bpx.Dense(3, 3), seed=None)
    assert isinstance(net.seed, int)
    again = bpx.Sequential(bpx.Dense(3, 3), seed=net.seed)
    assert np.array_equal(net.state_dict()["layers.0.weight"], again.state_dict()["layers.0.weight"])
    with pytest.raises(bpx.BpxValueError, match="seed must be a non-negative int"):
        bpx.Sequential(bpx.Dense(3, 3), seed=-1)
    with pytest.raises(bpx.BpxTypeError, match=r"seed must be a non-negative int or None, got 1\.5"):
        bpx.Sequential(bpx.Dense(3, 3), seed=1.5)
