"""Checkpoints (bpx.io): exact round trips, every backend in and out, optimizer state that resumes
training exactly, the documented file layout (written by hand, big-endian, version 1), PyTorch's
meta device, and a clear CheckpointError for every kind of bad content."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import bpx
from bpx import CheckpointError, NonFiniteError, StateError, load
from bpx.io import FORMAT, VERSION, read_header
from bpx.io import save_checkpoint as save
from bpx.testing import assert_close, backend_params

CASES = backend_params()
DATA = Path(__file__).parent / "data"
X = np.random.default_rng(7).normal(size=(6, 4))
T = np.random.default_rng(8).normal(size=(6, 3))


def make_net(backend="numpy", device=None, dtype="float64", seed=3):
    return bpx.Sequential(
        bpx.Dense(4, 6), bpx.ReLU(),
        bpx.Dense(6, 5, init="he_normal", train_bias=False), bpx.LeakyReLU(0.2),
        bpx.Dense(5, 3, use_bias=False), bpx.Tanh(),
        backend=backend, device=device, dtype=dtype, seed=seed,
    )


def make_rich_net(dtype="float64"):
    """Buffers (BatchNorm), randomness keyed by seed and step (Dropout) and a frozen parameter."""
    return bpx.Sequential(bpx.Dense(4, 6), bpx.BatchNorm(6), bpx.Tanh(), bpx.Dropout(0.3),
                          bpx.Dense(6, 3, train_bias=False), dtype=dtype, seed=11)


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def train(net, optimizer, steps):
    for _ in range(steps):
        net.train_step(X, T, bpx.HalfSquaredError(), optimizer)


def npz_arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_round_trip_is_exact(tmp_path, dtype):
    net = make_net(dtype=dtype)
    train(net, bpx.SGD(lr=0.1), 2)
    written = net.save(tmp_path / "net.npz")
    assert written == tmp_path / "net.npz"
    loaded = load(written)
    assert type(loaded) is bpx.Sequential
    assert loaded.backend.name == "numpy" and loaded.backend.dtype_name == dtype
    assert loaded.config() == net.config()
    assert (loaded.seed, loaded.step_count) == (3, 2)
    assert_same_weights(loaded, net)
    np.testing.assert_array_equal(bpx.to_host(loaded.forward(X)), bpx.to_host(net.forward(X)))


def test_npz_suffix_is_appended_and_returned(tmp_path):
    net = make_net()
    assert save(net, tmp_path / "model") == tmp_path / "model.npz"
    assert save(net, str(tmp_path / "model.ckpt")) == tmp_path / "model.ckpt.npz"
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.npz", "model.npz"]
    with pytest.raises(FileNotFoundError, match=r"did you mean 'model.npz'"):
        load(tmp_path / "model")


def test_file_layout_is_plain_numpy(tmp_path):
    net = make_rich_net(dtype="float32")
    optimizer = bpx.SGD(lr=0.1, momentum=0.9)
    path = save(net, tmp_path / "net.npz", optimizer)
    arrays = npz_arrays(path)
    header = json.loads(arrays["header"].tobytes().decode("utf-8"))
    assert sorted(arrays) == sorted(["header", *net.named_parameters(), *net.named_buffers()])  # no state yet
    for name, value in net.state_dict().items():
        assert arrays[name].dtype.str == "<f4" and arrays[name].shape == value.shape
    assert header == read_header(path)
    assert header["format"] == FORMAT and header["version"] == VERSION == 2
    assert header["bpx_version"] == bpx.__version__
    assert header["dtype"] == "float32"
    assert header["backend"] == {"name": "numpy", "device": "cpu"}
    assert header["config"] == net.config()
    assert (header["seed"], header["step_count"], header["loss"], header["metrics"]) == (11, 0, None, None)
    assert header["epochs_trained"] == 0
    assert header["parameters"]["layers.0.weight"] == {"shape": [4, 6], "dtype": "<f4"}
    assert header["buffers"] == {"layers.1.running_mean": {"shape": [6], "dtype": "<f4"},
                                 "layers.1.running_var": {"shape": [6], "dtype": "<f4"}}
    assert header["optimizer"] == {"class": "SGD", "iterations": 0, "state": {}, "base_lr": 0.1,
                                   "hyperparameters": {"lr": 0.1, "momentum": 0.9, "nesterov": False,
                                                       "weight_decay": 0.0}}
    train(net, optimizer, 1)
    path = save(net, path, optimizer)
    state = read_header(path)["optimizer"]["state"]
    trainable = [name for name, p in net.named_parameters().items() if p.trainable]
    assert state == {name: ["velocity"] for name in trainable} and "layers.4.bias" not in state
    arrays = npz_arrays(path)
    per_parameter = optimizer.parameter_state(net.store)
    for name, p in net.named_parameters().items():
        if p.trainable:
            np.testing.assert_array_equal(arrays[f"optim/{name}/velocity"], bpx.to_host(per_parameter[p]["velocity"]))


def handwritten_checkpoint(path, dtype="<f8", *, optimizer=True):
    """A checkpoint written with numpy.savez alone, following the layout in bpx.io.checkpoint's
    docstring: Dense(3, 2) → Tanh, SGD with momentum after 4 updates."""
    w = np.array([[0.5, -1.0], [0.25, 2.0], [-0.75, 0.125]])
    b = np.array([0.1, -0.2])
    velocity = {"layers.0.weight": np.full((3, 2), 0.01), "layers.0.bias": np.array([0.02, -0.03])}
    header = {
        "format": "bpx-checkpoint", "version": 2, "bpx_version": "by hand",
        "dtype": "float32" if dtype.endswith("4") else "float64",
        "backend": {"name": "none", "device": "none"},
        "config": {"layers": [{"type": "Dense", "in_features": 3, "out_features": 2}, {"type": "Tanh"}],
                   "input_shape": [3]},
        "seed": 5, "step_count": 4, "loss": {"name": "half_squared_error", "config": {}}, "metrics": [],
        "parameters": {"layers.0.weight": {"shape": [3, 2], "dtype": dtype},
                       "layers.0.bias": {"shape": [2], "dtype": dtype}},
        "buffers": {},
        "optimizer": None,
    }
    arrays = {"layers.0.weight": w.astype(dtype), "layers.0.bias": b.astype(dtype)}
    if optimizer:
        header["optimizer"] = {"class": "SGD", "hyperparameters": {"lr": 0.5, "momentum": 0.9}, "iterations": 4,
                               "state": {name: ["velocity"] for name in velocity}}
        arrays.update({f"optim/{name}/velocity": v.astype(dtype) for name, v in velocity.items()})
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return path, w, b, velocity


def test_a_checkpoint_written_by_hand_with_numpy_savez_loads(tmp_path):
    path, w, b, velocity = handwritten_checkpoint(tmp_path / "hand.npz")
    net, optimizer = load(path, with_optimizer=True)
    np.testing.assert_array_equal(net.state_dict()["layers.0.weight"], w)
    np.testing.assert_allclose(bpx.to_host(net.forward(X[:, :3])), np.tanh(X[:, :3] @ w + b), rtol=1e-15)
    assert (net.seed, net.step_count, net.metrics, type(net.loss)) == (5, 4, [], bpx.HalfSquaredError)
    assert type(optimizer) is bpx.SGD and (optimizer.lr, optimizer.momentum, optimizer.iterations) == (0.5, 0.9, 4)
    names = {p: name for name, p in net.named_parameters().items()}
    for p, state in optimizer.parameter_state(net.store).items():
        np.testing.assert_array_equal(bpx.to_host(state["velocity"]), velocity[names[p]])


@pytest.mark.parametrize("dtype", [">f8", ">f4"])
@pytest.mark.parametrize("backend, device", [("numpy", None), ("torch", "cpu")])
def test_big_endian_arrays_from_another_tool_load_with_their_values(tmp_path, dtype, backend, device):
    """A reader that ignored the byte order would see other numbers: weights and optimizer state
    (on PyTorch, the path that once was the only one to notice) must equal the values written."""
    if backend == "torch":
        pytest.importorskip("torch")
    path, w, b, velocity = handwritten_checkpoint(tmp_path / "big.npz", dtype)
    assert npz_arrays(path)["layers.0.weight"].dtype.str == dtype
    net, optimizer = load(path, backend, device, dtype="float64", with_optimizer=True)
    np.testing.assert_array_equal(net.state_dict()["layers.0.weight"], w.astype(dtype))
    np.testing.assert_array_equal(net.state_dict()["layers.0.bias"], b.astype(dtype))
    names = {p: name for name, p in net.named_parameters().items()}
    for p, state in optimizer.parameter_state(net.store).items():
        np.testing.assert_array_equal(bpx.to_host(state["velocity"]), velocity[names[p]].astype(dtype))


@pytest.mark.parametrize("dtype", [">f8", ">f4", "<f8"])
def test_the_reader_returns_native_byte_order_arrays_with_the_values_written(tmp_path, dtype):
    """NpzReader.array's contract: a writable array in the machine's byte order, holding the values
    written (backends such as PyTorch refuse or misread a byte-swapped buffer)."""
    from bpx.io.npz import NpzReader

    path, w, *_ = handwritten_checkpoint(tmp_path / "order.npz", dtype)
    with NpzReader(path) as npz:
        array = npz.array("layers.0.weight", shape=(3, 2))
    assert array.dtype.isnative and array.dtype == np.dtype(dtype).newbyteorder("=") and array.flags.writeable
    np.testing.assert_array_equal(array, w.astype(dtype))


@pytest.mark.parametrize("cfg", CASES)
def test_a_checkpoint_loads_on_every_backend(tmp_path, cfg):
    source = make_rich_net(cfg.dtype)
    train(source, bpx.SGD(lr=0.1), 1)
    path = save(source, tmp_path / "net.npz")
    loaded = load(path, backend=cfg.name, device=cfg.device)
    assert loaded.backend.name == cfg.name and loaded.backend.dtype_name == cfg.dtype
    if cfg.device is not None:
        assert str(loaded.backend.device) == str(cfg.backend().device)
    assert_same_weights(loaded, source)
    assert_close(loaded.forward(X), source.forward(X), dtype=cfg.dtype)


@pytest.mark.parametrize("cfg", CASES)
def test_every_backend_saves_loadable_checkpoints(tmp_path, cfg):
    source = make_net(cfg.name, cfg.device, cfg.dtype)
    path = save(source, tmp_path / "net.npz")
    assert read_header(path)["backend"]["name"] == cfg.name
    loaded = load(path)
    assert loaded.backend.name == "numpy" and loaded.backend.dtype_name == cfg.dtype
    assert_same_weights(loaded, source)
    assert_close(loaded.forward(X), source.forward(X), dtype=cfg.dtype)


def test_float64_checkpoint_loads_as_float32(tmp_path):
    source = make_net(dtype="float64")
    loaded = load(save(source, tmp_path / "net.npz"), dtype="float32")
    assert loaded.backend.dtype_name == "float32"
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, source.state_dict()[name].astype(np.float32))
    assert_close(loaded.forward(X), source.forward(X), dtype="float32")


def test_a_backend_object_brings_its_dtype(tmp_path):
    path = save(make_net(dtype="float64"), tmp_path / "net.npz")
    assert load(path, backend=bpx.get_backend("numpy", dtype="float32")).backend.dtype_name == "float32"


@pytest.mark.parametrize("where", ["layers.0.weight", "layers.1.running_var", "optim/layers.0.weight/velocity"])
def test_float64_values_that_overflow_float32_are_refused_by_name(tmp_path, where):
    net, optimizer = make_rich_net("float64"), bpx.SGD(lr=0.1, momentum=0.9)
    train(net, optimizer, 1)
    path = save(net, tmp_path / "net.npz", optimizer)
    arrays = npz_arrays(path)
    arrays[where] = arrays[where].copy()
    arrays[where].flat[0] = -3e300
    np.savez(path, **arrays)
    load(path, with_optimizer=True)  # fine as float64
    with pytest.raises(CheckpointError, match=rf"{str(path)!r}: array '{where}': the value 3e\+300 overflows to inf "
                                              "in float32"):
        load(path, dtype="float32", with_optimizer=True)


def test_frozen_parameters_stay_frozen(tmp_path):
    net = bpx.Sequential(bpx.Dense(4, 3, train_bias=False, bias=0.5), bpx.Sigmoid(),
                         bpx.Dense(3, 3, train_weight=False), dtype="float64", seed=0)
    loaded = load(save(net, tmp_path / "net.npz"))
    assert loaded.config() == net.config()
    assert loaded.config()["layers"][0]["train_bias"] is False
    trainable = {name: p.trainable for name, p in loaded.named_parameters().items()}
    assert trainable == {"layers.0.weight": True, "layers.0.bias": False,
                         "layers.2.weight": False, "layers.2.bias": True}
    np.testing.assert_array_equal(loaded.state_dict()["layers.0.bias"], [0.5, 0.5, 0.5])
    before = loaded.state_dict()
    train(loaded, bpx.SGD(lr=0.5), 1)
    after = loaded.state_dict()
    for name, was_trainable in trainable.items():
        assert np.array_equal(before[name], after[name]) != was_trainable, name


def test_shared_layers_stay_shared(tmp_path):
    d = bpx.Dense(3, 3)
    net = bpx.Sequential(d, bpx.Tanh(), d, dtype="float64", seed=2)
    optimizer = bpx.Adam(lr=0.01)
    train3 = np.random.default_rng(0).normal(size=(6, 3))
    net.train_step(train3, train3, "hse", optimizer)
    loaded, resumed = load(save(net, tmp_path / "net.npz", optimizer), with_optimizer=True)
    assert loaded.config()["layers"][2] == {"same_as": 0}
    assert loaded.layers[0] is loaded.layers[2] and len(loaded.parameters()) == 2
    np.testing.assert_array_equal(bpx.to_host(loaded.forward(train3)), bpx.to_host(net.forward(train3)))
    net.train_step(train3, train3, "hse", optimizer)
    loaded.train_step(train3, train3, "hse", resumed)
    assert_same_weights(loaded, net)


def test_loss_and_metrics_are_remembered(tmp_path):
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
    net = bpx.Sequential(bpx.Dense(4, 3), dtype="float64", seed=0)
    net.fit(x, labels, loss="softmax_cross_entropy", optimizer="sgd", epochs=2, verbose=0)
    header = read_header(save(net, tmp_path / "net.npz"))
    assert header["loss"] == {"name": "softmax_cross_entropy", "config": {}} and header["metrics"] == ["accuracy"]
    loaded = load(tmp_path / "net.npz")
    assert type(loaded.loss) is bpx.SoftmaxCrossEntropy and loaded.metrics == ["accuracy"]
    assert loaded.evaluate(x, labels) == net.evaluate(x, labels)  # no loss given: the saved one
    assert set(loaded.evaluate(x, labels)) == {"loss", "accuracy"}


def test_a_custom_loss_is_not_recorded(tmp_path):
    class Custom(bpx.HalfSquaredError):
        name = "custom_half_squared"

    net = make_net()
    net.loss = Custom()
    assert read_header(save(net, tmp_path / "net.npz"))["loss"] is None
    assert load(tmp_path / "net.npz").loss is None


def test_version_1_checkpoints_of_bpx_0_1_still_load():
    """``bpx-0.1.0-v1.npz`` was written by bpx 0.1.0 (Adam, 3 updates); ``...-after-2-steps.npz``
    holds the weights bpx 0.1.0 reached after 2 more updates on the same batch."""
    path = DATA / "bpx-0.1.0-v1.npz"
    header = read_header(path)
    assert header["version"] == 1 and "buffers" not in header and "loss" not in header
    net, optimizer = load(path, with_optimizer=True)
    arrays = npz_arrays(path)
    state = net.state_dict()
    assert set(state) == {n for n in arrays if n != "header" and not n.startswith("optim/")}
    for name, value in state.items():
        np.testing.assert_array_equal(value, arrays[name])
    hidden = np.maximum(X @ arrays["layers.0.weight"] + arrays["layers.0.bias"], 0)
    hidden = hidden @ arrays["layers.2.weight"] + arrays["layers.2.bias"]
    expected = np.tanh(np.where(hidden > 0, hidden, 0.2 * hidden) @ arrays["layers.4.weight"])
    assert_close(net.forward(X), expected, dtype="float32")
    assert (net.seed, net.step_count, net.loss, net.metrics) == (0, 0, None, None)
    assert type(optimizer) is bpx.Adam and optimizer.iterations == 3 and optimizer.lr == 0.01
    x, t = np.random.default_rng(7).normal(size=(5, 4)), np.random.default_rng(8).normal(size=(5, 3))
    for _ in range(2):
        net.train_step(x, t, bpx.HalfSquaredError(), optimizer)
    after = npz_arrays(DATA / "bpx-0.1.0-v1-after-2-steps.npz")
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, after[name], err_msg=name)


# ---------------------------------------------------------------------- optimizer state
OPTIMIZERS = {
    "sgd-momentum": lambda: bpx.SGD(lr=0.05, momentum=0.9),
    "sgd-nesterov-decay": lambda: bpx.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam": lambda: bpx.Adam(lr=0.01, beta1=0.8),
    "adamw": lambda: bpx.AdamW(lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_training_resumes_exactly_as_if_never_interrupted(tmp_path, make_optimizer, dtype):
    """The reference trains 5 steps without ever saving; the other run saves after 3, is thrown
    away, and a network and optimizer loaded from the file take the last 2 steps. Dropout masks
    (keyed by seed and step count), BatchNorm statistics (buffers), a frozen bias, weights,
    optimizer state and step counts must all come out identical, bit for bit."""
    reference, reference_optimizer = make_rich_net(dtype), make_optimizer()
    train(reference, reference_optimizer, 5)
    interrupted, optimizer = make_rich_net(dtype), make_optimizer()
    train(interrupted, optimizer, 3)
    path = save(interrupted, tmp_path / "net.npz", optimizer)
    del interrupted, optimizer
    resumed, resumed_optimizer = load(path, with_optimizer=True)
    assert type(resumed_optimizer) is type(reference_optimizer)
    assert resumed_optimizer.hyperparameters() == reference_optimizer.hyperparameters()
    assert resumed_optimizer.iterations == 3 and resumed.step_count == 3
    train(resumed, resumed_optimizer, 2)
    assert (resumed_optimizer.iterations, resumed.step_count) == (5, 5)
    assert_same_weights(resumed, reference)
    for key, value in resumed_optimizer.state.items():
        np.testing.assert_array_equal(bpx.to_host(value), bpx.to_host(reference_optimizer.state[key]), err_msg=key)


@pytest.mark.parametrize("cfg", CASES)
def test_optimizer_state_moves_to_every_backend(tmp_path, cfg):
    net, optimizer = make_net(dtype=cfg.dtype), bpx.Adam(lr=0.01)
    train(net, optimizer, 2)
    path = save(net, tmp_path / "net.npz", optimizer)
    train(net, optimizer, 1)
    resumed, resumed_optimizer = load(path, cfg.name, cfg.device, with_optimizer=True)
    assert set(resumed_optimizer.state) == {"m", "v"}
    for value in resumed_optimizer.state.values():
        resumed.backend.check_array(value, "optimizer state")
        assert value.dtype == resumed.backend.dtype
    train(resumed, resumed_optimizer, 1)
    for name, value in resumed.state_dict().items():
        assert_close(value, net.state_dict()[name], dtype=cfg.dtype, err_msg=name)


def test_optimizer_state_is_cast_with_the_network(tmp_path):
    net, optimizer = make_net(dtype="float64"), bpx.SGD(lr=0.1, momentum=0.9)
    train(net, optimizer, 1)
    _, resumed = load(save(net, tmp_path / "net.npz", optimizer), dtype="float32", with_optimizer=True)
    assert {v.dtype for v in resumed.state.values()} == {np.dtype("float32")}


def test_with_optimizer_needs_a_saved_optimizer(tmp_path):
    path = save(make_net(), tmp_path / "net.npz")
    with pytest.raises(CheckpointError, match="holds no optimizer"):
        load(path, with_optimizer=True)


def test_save_refuses_what_could_not_be_loaded_and_writes_nothing(tmp_path):
    target = tmp_path / "net.npz"
    other, optimizer = make_net(), bpx.SGD(lr=0.1, momentum=0.9)
    train(other, optimizer, 1)
    with pytest.raises(StateError, match=rf"{str(target)!r}: the optimizer holds the state of another network"):
        save(make_net(), target, optimizer)

    class Custom(bpx.SGD):
        pass

    with pytest.raises(StateError, match="only bpx's own optimizers"):
        save(make_net(), target, Custom(lr=0.1))
    net = make_net()
    net.layers[0].weight.value[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match=rf"{str(target)!r}: parameter 'layers.0.weight' holds NaN or inf"):
        save(net, target)
    net = make_rich_net()
    net.layers[1].running_var.value = np.full(6, np.inf)
    with pytest.raises(NonFiniteError, match=r"buffer 'layers.1.running_var' holds NaN or inf"):
        save(net, target)
    net, optimizer = make_net(), bpx.Adam()
    train(net, optimizer, 1)
    optimizer.state["v"][0] = np.inf
    with pytest.raises(NonFiniteError, match=r"the optimizer's 'v' of parameter 'layers.0.weight' holds NaN or inf"):
        save(net, target, optimizer)
    assert os.listdir(tmp_path) == []


def test_save_checks_the_path_before_any_work(tmp_path):
    net = make_net()
    net.layers[0].weight.value[0, 0] = np.nan  # would fail later: the path is checked first
    with pytest.raises(bpx.CheckpointWriteError, match=r"the folder .*missing.* does not exist"):
        save(net, tmp_path / "missing" / "net.npz")
    for folder in (f"{tmp_path}/", ".", ".."):
        with pytest.raises(bpx.CheckpointWriteError, match="it names a folder, not a file"):
            save(net, folder)
    (tmp_path / "mlp").mkdir()  # as numpy.savez does, "mlp" means "mlp.npz", beside the folder "mlp"
    net.layers[0].weight.value[0, 0] = 0.0
    assert save(net, tmp_path / "mlp") == tmp_path / "mlp.npz"


# ---------------------------------------------------------------------- PyTorch's meta device
def test_the_meta_device_gives_a_clear_error(tmp_path):
    pytest.importorskip("torch")
    net = make_net("torch", "meta", "float32")
    with pytest.raises(StateError, match=r"saving checkpoint .*'meta' device"):
        net.save(tmp_path / "net.npz")
    with pytest.raises(StateError, match="'meta'"):
        net.state_dict()
    with pytest.raises(StateError, match="'meta'"):
        net.store.host_values()
    with pytest.raises(bpx.DeviceMismatchError, match="'meta'"):
        bpx.to_host(net.layers[0].weight.value)
    assert os.listdir(tmp_path) == []
    path = save(make_net(), tmp_path / "net.npz")
    with pytest.raises(StateError, match=r"loading checkpoint .*'meta' device"):
        load(path, "torch", "meta")


# ---------------------------------------------------------------------- bad content
@pytest.fixture
def good(tmp_path) -> Path:
    """A valid checkpoint with SGD momentum state."""
    net, optimizer = make_net(dtype="float32"), bpx.SGD(lr=0.1, momentum=0.9)
    train(net, optimizer, 1)
    return save(net, tmp_path / "good.npz", optimizer)


def rewrite(path: Path, target: Path, edit=None, **arrays) -> Path:
    """Copy the checkpoint at ``path`` to ``target`` with its header edited by the function ``edit`` and
    arrays replaced (``None``: removed) or added."""
    content = npz_arrays(path)
    if edit is not None:
        edited = edit(json.loads(content["header"].tobytes()))
        content["header"] = np.frombuffer(json.dumps(edited).encode(), dtype=np.uint8)
    content.update(arrays)
    np.savez(target, **{k: v for k, v in content.items() if v is not None})
    return target


def with_key(key, value):
    return lambda h: {**h, key: value}


def without_key(key):
    return lambda h: {k: v for k, v in h.items() if k != key}


def header_bytes(text: bytes):
    return lambda g, b: rewrite(g, b, header=np.frombuffer(text, np.uint8))


def with_layer(**spec):
    return with_key("config", {"layers": [spec]})


BAD_FILES = {
    "truncated-half": (lambda g, b: b.write_bytes(g.read_bytes()[: g.stat().st_size // 2]), "truncated, corrupt"),
    "random-bytes": (lambda g, b: b.write_bytes(np.random.default_rng(0).bytes(2000)), "not an .npz archive"),
    "text-file": (lambda g, b: b.write_text("weights: [0.1, 0.2]\n"), "not an .npz archive"),
    "empty-file": (lambda g, b: b.write_bytes(b""), "not an .npz archive"),
    "npy-file": (lambda g, b: np.save(b.open("wb"), np.zeros(3)), r"single NumPy \.npy array"),
    "no-header": (lambda g, b: rewrite(g, b, header=None), "no 'header' array"),
    "pickled-dict": (lambda g, b: np.savez(b, config={"layers": []}), "no 'header' array"),
    "object-weights": (lambda g, b: rewrite(g, b, **{"layers.0.weight": np.array({"w": 1}, dtype=object)}),
                       r"array 'layers.0.weight' has dtype \|O"),
    "object-header": (lambda g, b: rewrite(g, b, **{"header": np.array({"format": FORMAT}, dtype=object)}),
                      r"array 'header' has dtype \|O"),
    "header-not-bytes": (lambda g, b: rewrite(g, b, **{"header": np.zeros(3)}), r"'header' has dtype <f8"),
    "header-2d": (lambda g, b: rewrite(g, b, **{"header": np.zeros((2, 2), np.uint8)}), "a 1-D array is expected"),
    "header-not-utf8": (header_bytes(b"\xff{"), "not valid UTF-8 JSON"),
    "header-nan": (header_bytes(b'{"format": NaN}'), "NaN is not valid JSON"),
    "header-inf-number": (header_bytes(b'{"format": 1e999}'), "1e999 overflows a float"),
    "header-duplicate-key": (header_bytes(b'{"format": "x", "format": "bpx-checkpoint"}'), "'format' appears twice"),
    "header-json-list": (header_bytes(b"[1]"), "not a JSON object but"),
    "header-deep": (header_bytes(b'{"format": ' + b"[" * 100 + b"]" * 100 + b"}"), "nests deeper than 64"),
    "other-format": (lambda g, b: rewrite(g, b, edit=with_key("format", "keras-weights")),
                     "format is 'keras-weights', not 'bpx-checkpoint'"),
    "future-version": (lambda g, b: rewrite(g, b, edit=with_key("version", VERSION + 1)),
                       rf"format version {VERSION + 1} is newer .* upgrade bpx"),
    "version-string": (lambda g, b: rewrite(g, b, edit=with_key("version", "1")), "invalid format version '1'"),
    "no-config": (lambda g, b: rewrite(g, b, edit=without_key("config")), "no 'config'"),
    "bad-dtype": (lambda g, b: rewrite(g, b, edit=with_key("dtype", "float16")), "dtype 'float16'"),
    "seed-null": (lambda g, b: rewrite(g, b, edit=with_key("seed", None)), "'seed' is None, expected a non-neg"),
    "step-count-float": (lambda g, b: rewrite(g, b, edit=with_key("step_count", 1.5)), "'step_count' is 1.5"),
    "metrics-string": (lambda g, b: rewrite(g, b, edit=with_key("metrics", "accuracy")), "'metrics' is 'accuracy'"),
    "loss-unknown": (lambda g, b: rewrite(g, b, edit=with_key("loss", {"name": "hinge"})), "unknown loss 'hinge'"),
    "loss-bad-config": (lambda g, b: rewrite(g, b, edit=with_key("loss", {"name": "mean_squared_error",
                                                                          "config": {"p": 1}})), "invalid loss"),
    "optimizer-list": (lambda g, b: rewrite(g, b, edit=with_key("optimizer", [])), "'optimizer' is \\[\\]"),
    "layers-not-a-list": (lambda g, b: rewrite(g, b, edit=with_key("config", {"layers": 3})), "'layers' is 3"),
    "layer-not-an-object": (lambda g, b: rewrite(g, b, edit=with_key("config", {"layers": ["Dense"]})),
                            r"layers\[0\] is 'Dense', not an object"),
    "unknown-layer": (lambda g, b: rewrite(g, b, edit=with_layer(type="Transformer")),
                      "invalid architecture.*unknown layer type 'Transformer'"),
    "layer-missing-arguments": (lambda g, b: rewrite(g, b, edit=with_layer(type="Conv2D")),
                                r"layers\[0\]: invalid configuration for Conv2D"),
    "layer-huge-float": (lambda g, b: rewrite(g, b, edit=with_layer(type="LeakyReLU", negative_slope=10**400)),
                         r"layers\[0\]"),
    "explicit-values": (lambda g, b: rewrite(g, b, edit=with_layer(type="Dense", in_features=4, out_features=3,
                                                                  weight=0.5)), "explicit weight values"),
    "bad-same-as": (lambda g, b: rewrite(g, b, edit=with_key("config", {"layers": [{"type": "ReLU"}, {"same_as": 5}],
                                                                       "input_shape": [4]})),
                    r"invalid architecture .*layers\[1\] refers to"),
    "listing-mismatch": (lambda g, b: rewrite(g, b, edit=lambda h: {**h, "parameters": {
        **h["parameters"], "layers.0.weight": {"shape": [4, 7], "dtype": "<f4"}}}), "the header lists 'layers.0.w"),
    "listing-missing": (lambda g, b: rewrite(g, b, edit=lambda h: {**h, "parameters": {}}),
                        r"the header's 'parameters' do not match .*missing \['layers.0.bias'"),
    "transposed-weight": (lambda g, b: rewrite(g, b, **{"layers.0.weight": np.zeros((6, 4), "<f4")}),
                          r"array 'layers.0.weight' has shape \(6, 4\) but \(4, 6\) is expected"),
    "missing-weight": (lambda g, b: rewrite(g, b, **{"layers.2.bias": None}),
                       r"arrays do not match the architecture: missing \['layers.2.bias'\], unexpected \[\]"),
    "extra-weight": (lambda g, b: rewrite(g, b, **{"layers.9.weight": np.zeros(2, "<f4")}),
                     r"missing \[\], unexpected \['layers.9.weight'\]"),
    "int-weights": (lambda g, b: rewrite(g, b, **{"layers.0.bias": np.zeros(6, np.int32)}), "dtype <i4"),
    "float64-in-a-float32-file": (lambda g, b: rewrite(g, b, **{"layers.0.bias": np.zeros(6)}), "dtype <f8"),
    "nan-weights": (lambda g, b: rewrite(g, b, **{"layers.0.bias": np.full(6, np.nan, "<f4")}),
                    "'layers.0.bias' holds NaN or inf"),
    "inf-weights": (lambda g, b: rewrite(g, b, **{"layers.2.weight": np.full((6, 5), -np.inf, "<f4")}),
                    "'layers.2.weight' holds NaN or inf"),
    "stray-optimizer-state": (lambda g, b: rewrite(g, b, edit=with_key("optimizer", None)),
                              "optimizer state arrays but the header has no optimizer"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files_raise_a_clear_checkpoint_error(good, case):
    make_bad, message = case
    bad = good.with_name("bad.npz")
    make_bad(good, bad)
    with pytest.raises(CheckpointError, match=message) as info:
        load(bad)
    assert str(info.value).startswith(f"cannot load checkpoint {str(bad)!r}: ")
    assert isinstance(info.value, ValueError)


def optimizer_edit(**changes):
    return lambda h: {**h, "optimizer": {**h["optimizer"], **changes}}


BAD_OPTIMIZERS = {
    "unknown-class": (optimizer_edit(**{"class": "Lion"}), {}, "unknown class 'Lion'"),
    "bad-hyperparameter": (optimizer_edit(hyperparameters={"lr": -1}), {}, "invalid optimizer.*lr must be > 0"),
    "unknown-hyperparameter": (optimizer_edit(hyperparameters={"lr": 0.1, "warp": 9}), {}, "invalid optimizer.*warp"),
    "state-not-listed": (optimizer_edit(state={}), {}, "the optimizer state covers \\[\\] but the trainable"),
    "state-array-missing": (None, {"optim/layers.0.weight/velocity": None},
                            r"missing \['optim/layers.0.weight/velocity'\]"),
    "state-for-unknown-parameter": (optimizer_edit(state={"layers.7.weight": ["velocity"]}), {},
                                    r"parameters the network does not have: \['layers.7.weight'\]"),
    "state-for-frozen-parameter": (
        lambda h: {**h, "optimizer": {**h["optimizer"], "state": {**h["optimizer"]["state"],
                                                                  "layers.2.bias": ["velocity"]}}},
        {"optim/layers.2.bias/velocity": np.zeros(5, "<f4")}, r"frozen parameters: \['layers.2.bias'\]"),
    "state-keys-of-another-optimizer": (
        optimizer_edit(hyperparameters={"lr": 0.1}), {},
        r"layers.0.\w+ has \['velocity'\], but SGD with these hyperparameters keeps \[\]"),
    "state-shape": (None, {"optim/layers.0.weight/velocity": np.zeros((4, 5), "<f4")}, r"shape \(4, 5\)"),
    "state-nan": (None, {"optim/layers.0.weight/velocity": np.full((4, 6), np.nan, "<f4")}, "holds NaN or inf"),
}


@pytest.mark.parametrize("case", BAD_OPTIMIZERS.values(), ids=BAD_OPTIMIZERS.keys())
def test_bad_optimizer_state_raises_a_clear_checkpoint_error(good, case):
    header, arrays, message = case
    bad = rewrite(good, good.with_name("bad.npz"), header, **arrays)
    load(bad)  # the network alone still loads
    with pytest.raises(CheckpointError, match=message):
        load(bad, with_optimizer=True)


def test_missing_file_folder_and_special_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bpx checkpoint at this path") as info:
        load(tmp_path / "nowhere.npz")
    assert str(tmp_path / "nowhere.npz") in str(info.value)
    with pytest.raises(CheckpointError, match="it is a folder"):
        load(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(CheckpointError, match="not a regular file"):
            load("/dev/zero")


def test_load_checkpoint_returns_the_network_alone_unless_asked_for_the_optimizer(tmp_path):
    from bpx.io import load_checkpoint
    from bpx.nn.network import Network

    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    sgd = bpx.SGD(lr=0.1, momentum=0.5)
    net.train_step(np.ones((2, 2)), np.ones((2, 1)), "mse", sgd)
    path = save(net, tmp_path / "net", optimizer=sgd)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Network)
    again, optimizer = load_checkpoint(path, with_optimizer=True)
    assert isinstance(again, Network) and isinstance(optimizer, bpx.SGD) and optimizer.iterations == 1
