"""Conv2D against PyTorch's conv2d (forward, input/weight/bias gradients) on every backend and device,
whole CNNs against PyTorch modules and central differences, the meta device, checkpoints across
backends, shape inference and its errors, and constructor validation.

The per-layer contract (gradcheck, shared use, meta, checkpoints, config) also runs from
``tests/nn/test_layer_contract.py``."""

import json

import numpy as np
import pytest
from cnn_reference import bpx_passes, case_matrix, torch_passes

import bpx
from bpx.errors import BpxTypeError, BpxValueError, ShapeError
from bpx.nn.layer import layer_from_config
from bpx.testing import BackendConfig, assert_close, backend_params

torch = pytest.importorskip("torch")
F = torch.nn.functional
F64 = backend_params(dtypes=("float64",))
F32 = backend_params(dtypes=("float32",))

# (in_channels, out_channels, kernel_size, stride, padding, (H, W), use_bias)
CONV_CASES = [
    (2, 3, 3, 1, 0, (7, 6), True),
    (2, 3, (3, 2), 1, 1, (7, 6), True),
    (2, 3, (2, 3), 2, 0, (7, 6), True),
    (2, 4, 3, 2, 1, (8, 5), True),
    (3, 2, (1, 4), (2, 1), (0, 2), (5, 7), False),
    (1, 2, 5, 1, 2, (6, 6), True),
]
CONV_IDS = [f"c{c[0]}-{c[1]}-k{c[2]}-s{c[3]}-p{c[4]}-{c[5][0]}x{c[5][1]}{'' if c[6] else '-nobias'}"
            for c in CONV_CASES]


def conv_case(case, rng, n=3):
    cin, cout, k, _, _, (h, w), use_bias = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, cin, h, w))
    params = {"weight": rng.standard_normal((cout, cin, kh, kw))}
    if use_bias:
        params["bias"] = rng.standard_normal(cout)
    return x, params


@pytest.mark.parametrize(("cfg", "case"), case_matrix(CONV_CASES, CONV_IDS))
def test_conv2d_matches_torch(case, cfg):
    rng = np.random.default_rng(0)
    cin, cout, k, s, p, _, use_bias = case
    x, params = conv_case(case, rng)

    def conv(x, weight, bias=None):
        return F.conv2d(x, weight, bias, stride=s, padding=p)

    grad_out = rng.standard_normal(conv(torch.tensor(x), torch.tensor(params["weight"])).shape)
    y_ref, gx_ref, gp_ref = torch_passes(conv, x, params, grad_out)
    layer = bpx.Conv2D(cin, cout, k, s, p, use_bias=use_bias, weight=params["weight"], bias=params.get("bias"))
    y, gx, gp = bpx_passes([layer], x, grad_out, cfg)
    assert_close(y, y_ref, dtype=cfg.dtype, err_msg="outputs")
    assert_close(gx, gx_ref, dtype=cfg.dtype, err_msg="input gradient")
    assert sorted(gp) == sorted(f"layers.0.{name}" for name in params)
    for name, ref in gp_ref.items():
        assert_close(gp[f"layers.0.{name}"], ref, dtype=cfg.dtype, err_msg=name)


@pytest.mark.parametrize("cfg", F32)
def test_conv2d_float32_matches_torch(cfg):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 9, 8)).astype(np.float32).astype(np.float64)
    params = {"weight": rng.standard_normal((5, 3, 3, 3)).astype(np.float32).astype(np.float64),
              "bias": rng.standard_normal(5).astype(np.float32).astype(np.float64)}
    grad_out = rng.standard_normal((4, 5, 5, 4)).astype(np.float32).astype(np.float64)
    y_ref, gx_ref, gp_ref = torch_passes(lambda x, weight, bias: F.conv2d(x, weight, bias, stride=2, padding=1),
                                         x, params, grad_out)
    y, gx, gp = bpx_passes([bpx.Conv2D(3, 5, 3, 2, 1, **params)], x, grad_out, cfg)
    assert_close(y, y_ref, dtype=cfg.dtype, factor=4)
    assert_close(gx, gx_ref, dtype=cfg.dtype, factor=4)
    for name, ref in gp_ref.items():
        assert_close(gp[f"layers.0.{name}"], ref, dtype=cfg.dtype, factor=4, err_msg=name)


def torch_cnn(weights):
    """The PyTorch twin of :func:`small_cnn` with bpx's weights copied in (Dense stores W as (in, out))."""
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(3, 4, (2, 3), stride=(1, 2)), nn.Tanh(), nn.AvgPool2d(2, stride=1), nn.Flatten(),
                          nn.Linear(8, 3)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(weights["layers.0.weight"]))
        model[0].bias.copy_(torch.tensor(weights["layers.0.bias"]))
        model[3].weight.copy_(torch.tensor(weights["layers.3.weight"]))
        model[3].bias.copy_(torch.tensor(weights["layers.3.bias"]))
        model[7].weight.copy_(torch.tensor(weights["layers.7.weight"].T))
        model[7].bias.copy_(torch.tensor(weights["layers.7.bias"]))
    return model


def small_cnn(cfg, seed=0, **kw):
    """(2, 8, 10) → conv 3×3 pad 1 → (3, 8, 10) → ReLU → max 2 → (3, 4, 5) → conv (2, 3) stride (1, 2)
    → (4, 3, 2) → tanh → avg 2 stride 1 → (4, 2, 1) → flatten (8) → dense → (3)."""
    return bpx.Sequential(
        bpx.Conv2D(2, 3, 3, padding=1), bpx.ReLU(), bpx.MaxPool2D(2),
        bpx.Conv2D(3, 4, (2, 3), stride=(1, 2)), bpx.Tanh(), bpx.AvgPool2D(2, stride=1),
        bpx.Flatten(), bpx.Dense(8, 3),
        backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=seed, input_shape=(2, 8, 10), **kw)


@pytest.mark.parametrize("cfg", F64)
def test_train_step_gradients_of_a_cnn_match_torch(cfg):
    rng = np.random.default_rng(2)
    net = small_cnn(cfg)
    assert net.output_shape == (3,)
    x, labels = rng.standard_normal((6, 2, 8, 10)), rng.integers(0, 3, size=6)
    weights = net.state_dict()
    model = torch_cnn(weights)
    loss = F.cross_entropy(model(torch.tensor(x)), torch.tensor(labels))
    loss.backward()
    value = net.train_step(x, labels, "softmax_cross_entropy", bpx.SGD(lr=0.1))
    assert_close(value, loss.item(), dtype=cfg.dtype)
    grads = {name: bpx.to_host(p.grad) for name, p in net.named_parameters().items()}
    for i in (0, 3):
        assert_close(grads[f"layers.{i}.weight"], model[i].weight.grad.numpy(), dtype=cfg.dtype)
        assert_close(grads[f"layers.{i}.bias"], model[i].bias.grad.numpy(), dtype=cfg.dtype)
    assert_close(grads["layers.7.weight"], model[7].weight.grad.numpy().T, dtype=cfg.dtype)
    assert_close(grads["layers.7.bias"], model[7].bias.grad.numpy(), dtype=cfg.dtype)


@pytest.mark.parametrize("cfg", F64)
def test_gradcheck_passes_for_a_small_cnn(cfg):
    net = bpx.Sequential(
        bpx.Conv2D(2, 2, 3, padding=1), bpx.Tanh(), bpx.MaxPool2D(2),
        bpx.Conv2D(2, 2, (2, 3), stride=(1, 2), padding=(0, 1)), bpx.Tanh(), bpx.GlobalAvgPool2D(), bpx.Dense(2, 3),
        backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=3, input_shape=(2, 6, 7))
    rng = np.random.default_rng(3)
    x, labels = rng.standard_normal((3, 2, 6, 7)), rng.integers(0, 3, size=3)
    result = bpx.gradcheck(net, x, labels, "softmax_cross_entropy")
    assert result.ok and result.mode == "coordinates", result.report()


def test_a_cnn_trains_on_the_meta_device():
    backend = bpx.get_backend("torch", "meta", "float32")
    net = bpx.Sequential(
        bpx.Conv2D(1, 4, 3, padding=1), bpx.ReLU(), bpx.MaxPool2D(2), bpx.Conv2D(4, 4, 3, stride=2, padding=1),
        bpx.ReLU(), bpx.AvgPool2D(2, stride=1), bpx.Conv2D(4, 6, 1), bpx.MaxPool2D((2, 1), stride=(1, 2)),
        bpx.Flatten(), bpx.Dense(24, 5), backend=backend, seed=0, input_shape=(1, 16, 15))
    x = torch.empty((8, 1, 16, 15), device="meta")
    t = torch.empty((8, 5), device="meta")
    for optimizer in (bpx.SGD(lr=0.1, momentum=0.9), bpx.Adam()):
        value = net.train_step(x, t, "softmax_cross_entropy", optimizer)
        assert value.device.type == "meta" and value.shape == ()
    assert all(p.value.device.type == "meta" for p in net.parameters())
    gap = bpx.Sequential(bpx.Conv2D(1, 3, 3), bpx.GlobalAvgPool2D(), backend=backend, seed=0, input_shape=(1, 5, 5))
    assert gap.train_step(torch.empty((2, 1, 5, 5), device="meta"), torch.empty((2, 3), device="meta"),
                          "half_squared_error", bpx.SGD(lr=0.1)).device.type == "meta"


@pytest.mark.parametrize("cfg", F64)
def test_checkpoint_reproduces_outputs_across_backends(cfg, tmp_path):
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((5, 2, 8, 10)), rng.integers(0, 3, size=5)
    source = small_cnn(BackendConfig("numpy", None, "float64"), seed=5)
    source.train_step(x, labels, "softmax_cross_entropy", bpx.Adam(1e-2))
    path = source.save(tmp_path / "cnn.npz")
    loaded = bpx.load(path, backend=cfg.name, device=cfg.device)
    assert loaded.config() == source.config()
    outputs = loaded.predict(x)
    assert_close(outputs, source.predict(x), dtype=cfg.dtype)
    # and back: saved on this backend, loaded on NumPy
    again = bpx.load(loaded.save(tmp_path / "cnn2.npz"), backend="numpy")
    assert_close(again.predict(x), outputs, dtype=cfg.dtype)


def test_compiled_jax_steps_match_numpy():
    pytest.importorskip("jax")
    rng = np.random.default_rng(6)
    x, labels = rng.standard_normal((16, 2, 8, 10)), rng.integers(0, 3, size=16)
    nets = {}
    for name, compile_ in (("numpy", False), ("jax", True)):
        cfg = BackendConfig(name, None, "float64")
        net = small_cnn(cfg, seed=7)
        net.fit(x, labels, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.1, momentum=0.9), epochs=2,
                batch_size=8, seed=0, verbose=0, compile=compile_)
        nets[name] = net
    for name, value in nets["numpy"].state_dict().items():
        assert_close(nets["jax"].state_dict()[name], value, dtype="float64", factor=16, err_msg=name)


# ---------------------------------------------------------------------- shapes
def test_shape_inference_and_summary():
    net = bpx.Sequential(bpx.Conv2D(1, 6, 5, padding=2), bpx.ReLU(), bpx.MaxPool2D(2), bpx.Conv2D(6, 16, 5),
                         bpx.ReLU(), bpx.AvgPool2D(2), bpx.Flatten(), bpx.Dense(400, 10), input_shape=(1, 28, 28))
    assert net.shapes == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,),
                          (10,)]
    text = str(net.summary())
    for shape in ("(n, 6, 28, 28)", "(n, 6, 14, 14)", "(n, 16, 10, 10)", "(n, 16, 5, 5)", "(n, 400)", "(n, 10)"):
        assert shape in text
    assert "Conv2D(in_channels=1, out_channels=6, kernel_size=5, padding=2)" in text
    assert "MaxPool2D(kernel_size=2)" in text
    assert f"{6 * 25 + 6 + 16 * 6 * 25 + 16 + 4010:,} parameters" in text
    assert net.predict(np.zeros((2, 1, 28, 28))).shape == (2, 10)


def test_shape_errors_are_clear():
    with pytest.raises(ShapeError, match=r"cannot infer the input shape from the first layer \(Conv2D\)"):
        bpx.Sequential(bpx.Conv2D(1, 4, 3))
    with pytest.raises(ShapeError, match=r"layers\[0\] Conv2D.*expects 3 input channel\(s\).*\(1, 28, 28\)"):
        bpx.Sequential(bpx.Conv2D(3, 4, 3), input_shape=(1, 28, 28))
    with pytest.raises(ShapeError, match=r"5×5 kernel is larger than its padded input 5×4 \(input 3×2, padding 1×1\)"):
        bpx.Sequential(bpx.Conv2D(1, 4, 5, padding=1), input_shape=(1, 3, 2))
    with pytest.raises(ShapeError, match=r"\(channels, height, width\), got \(784,\).*reshape"):
        bpx.Sequential(bpx.Conv2D(1, 4, 3), input_shape=(784,))
    with pytest.raises(ShapeError, match=r"layers\[3\] Dense: Dense\(100, 10\) expects 100 input features.*\(144,\)"):
        bpx.Sequential(bpx.Conv2D(1, 4, 3), bpx.MaxPool2D(2), bpx.Flatten(), bpx.Dense(100, 10),
                       input_shape=(1, 14, 14))
    net = bpx.Sequential(bpx.Conv2D(1, 2, 3), input_shape=(1, 5, 5))
    with pytest.raises(ShapeError, match=r"expected shape \(n_samples, 1, 5, 5\)"):
        net.predict(np.zeros((2, 25)))


def test_constructor_validation():
    with pytest.raises(BpxValueError, match="Conv2D kernel_size must be >= 1, got 0"):
        bpx.Conv2D(1, 2, 0)
    with pytest.raises(BpxTypeError, match=r"Conv2D kernel_size must be an int or a pair"):
        bpx.Conv2D(1, 2, (3, 3, 3))
    with pytest.raises(BpxTypeError, match=r"Conv2D stride must be an int or a pair"):
        bpx.Conv2D(1, 2, 3, stride=1.5)
    with pytest.raises(BpxValueError, match=r"Conv2D padding\[1\] must be >= 0, got -1"):
        bpx.Conv2D(1, 2, 3, padding=(0, -1))
    with pytest.raises(BpxValueError, match="Conv2D in_channels must be >= 1"):
        bpx.Conv2D(0, 2, 3)
    with pytest.raises(BpxValueError, match="use_bias=False"):
        bpx.Conv2D(1, 2, 3, use_bias=False, bias=0.5)
    with pytest.raises(ShapeError, match=r"expected shape \(2, 1, 3, 3\), got \(2, 3, 3\)"):
        bpx.Conv2D(1, 2, 3, weight=np.zeros((2, 3, 3)))
    with pytest.raises(BpxValueError, match="unknown initialiser"):
        bpx.Conv2D(1, 2, 3, init="nope")


def test_config_round_trip_and_frozen_parameters():
    layer = bpx.Conv2D(2, 3, (3, 1), stride=(2, 1), padding=1, init="glorot_uniform", train_bias=False)
    config = json.loads(json.dumps(layer.config()))
    assert config == {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 1], "stride": [2, 1], "padding": 1,
                      "init": "glorot_uniform", "train_bias": False}
    twin = layer_from_config("Conv2D", config)
    assert (twin.kernel_size, twin.stride, twin.padding) == ((3, 1), (2, 1), (1, 1))
    assert twin.config() == layer.config() and not twin.bias.trainable
    assert layer.clone().config() == layer.config()
    net = bpx.Sequential(layer, input_shape=(2, 5, 5), dtype="float64", seed=0)
    net.train_step(np.ones((2, 2, 5, 5)), np.zeros((2, 3, 3, 7)), "half_squared_error", bpx.SGD(lr=0.1))
    assert layer.bias.grad is None and layer.weight.grad.shape == (3, 2, 3, 1)
    assert np.all(bpx.to_host(layer.bias.value) == 0.0)


def test_default_initialisation_is_he_uniform_with_conv_fans():
    net = bpx.Sequential(bpx.Conv2D(8, 16, 3), input_shape=(8, 5, 5), seed=0, dtype="float64")
    w = bpx.to_host(net.layers[0].weight.value)
    limit = np.sqrt(6.0 / (8 * 9))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    assert np.all(bpx.to_host(net.layers[0].bias.value) == 0.0)


def test_first_layer_skips_the_input_gradient():
    net = bpx.Sequential(bpx.Conv2D(1, 2, 3), input_shape=(1, 4, 4), dtype="float64", seed=0)
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(np.ones((2, 1, 4, 4))), ctx)
    grads = bpx.nn.Gradients(net.store)
    assert net.backward(passed, net.backend.ones((2, 2, 2, 2)), grads, ctx) is None
    assert_close(grads.flat()[-2:], [8.0, 8.0])  # ∂E/∂b = Σ over batch and positions


def test_initialisers_receive_the_fans_of_a_non_square_kernel():
    """fan_in = in_c·kh·kw and fan_out = out_c·kh·kw (see bpx.host.init), for a 2×3 kernel."""
    seen = []

    def record(rng, shape, fan_in, fan_out):
        seen.append((shape, fan_in, fan_out))
        return np.zeros(shape)

    bpx.Sequential(bpx.Conv2D(3, 5, (2, 3), init=record), input_shape=(3, 4, 4), seed=0)
    assert seen == [((5, 3, 2, 3), 3 * 2 * 3, 5 * 2 * 3)]


def test_an_output_of_zero_rows_is_refused():
    """A 3×3 kernel over a 2×2 input leaves ⌊(2 − 3)/1⌋ + 1 = 0 output rows: an error, not an empty map."""
    with pytest.raises(ShapeError, match="larger than its padded input"):
        bpx.Sequential(bpx.Conv2D(1, 1, 3), input_shape=(1, 2, 2))
    for shape in ((1, 2, 3), (1, 3, 2)):  # zero rows but one column, and the other way round
        with pytest.raises(ShapeError, match="larger than its padded input"):
            bpx.Sequential(bpx.Conv2D(1, 1, 3), input_shape=shape)
    assert bpx.Sequential(bpx.Conv2D(1, 1, 3), input_shape=(1, 3, 3)).output_shape == (1, 1, 1)


def test_config_records_exactly_the_non_default_arguments():
    assert bpx.Conv2D(1, 2, 3).config() == {"in_channels": 1, "out_channels": 2, "kernel_size": 3}
    full = bpx.Conv2D(1, 2, (3, 2), stride=2, padding=(1, 0), use_bias=False, init="lecun_normal",
                      train_weight=False).config()
    assert full == {"in_channels": 1, "out_channels": 2, "kernel_size": [3, 2], "stride": 2, "padding": [1, 0],
                    "use_bias": False, "init": "lecun_normal", "train_weight": False}
    assert "init" not in bpx.Conv2D(1, 2, 3, init=lambda rng, shape: np.zeros(shape)).config()
