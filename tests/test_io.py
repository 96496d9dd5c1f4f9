"""Checkpoints (bpx.io): exact round trips, every backend in and out, optimizer state, atomic
writes, and a clear CheckpointError for every kind of bad file."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

import bpx
from bpx.io import FORMAT, VERSION, CheckpointError, load, read_header, save
from bpx.testing import assert_close, backend_params

CASES = backend_params()
X = np.random.default_rng(7).normal(size=(5, 4))
T = np.random.default_rng(8).normal(size=(5, 3))


def make_net(backend="numpy", device=None, dtype="float64"):
    return bpx.Sequential(
        bpx.Dense(4, 6), bpx.ReLU(),
        bpx.Dense(6, 5, init="he_normal", train_bias=False), bpx.LeakyReLU(0.2),
        bpx.Dense(5, 3, use_bias=False), bpx.Tanh(),
        backend=backend, device=device, dtype=dtype, seed=3,
    )


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def train(net, optimizer, steps):
    for _ in range(steps):
        net.train_step(X, T, bpx.HalfSquaredError(), optimizer)


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_round_trip_is_exact(tmp_path, dtype):
    net = make_net(dtype=dtype)
    train(net, bpx.SGD(lr=0.1), 2)
    written = save(net, tmp_path / "net.npz")
    assert written == tmp_path / "net.npz"
    loaded = load(written)
    assert loaded.backend.name == "numpy" and loaded.backend.dtype_name == dtype
    assert loaded.config() == net.config()
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
    net = make_net(dtype="float32")
    path = save(net, tmp_path / "net.npz", bpx.SGD(lr=0.1, momentum=0.9))
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(npz["header"].tobytes().decode("utf-8"))
        assert sorted(npz.files) == sorted(["header", *net.named_parameters()])  # no state before a step
        for name, p in net.named_parameters().items():
            assert npz[name].dtype.str == "<f4" and npz[name].shape == p.shape
    assert header == read_header(path)
    assert header["format"] == FORMAT and header["version"] == VERSION
    assert header["bpx_version"] == bpx.__version__
    assert header["dtype"] == "float32"
    assert header["backend"] == {"name": "numpy", "device": "cpu"}
    assert header["config"] == net.config()
    assert header["parameters"]["layers.0.weight"] == {"shape": [4, 6], "dtype": "<f4"}
    assert header["optimizer"] == {"class": "SGD", "iterations": 0, "state": {},
                                   "hyperparameters": {"lr": 0.1, "momentum": 0.9, "nesterov": False,
                                                       "weight_decay": 0.0}}


@pytest.mark.parametrize("cfg", CASES)
def test_torch_checkpoint_loads_on_every_backend(tmp_path, cfg):
    pytest.importorskip("torch")
    source = make_net("torch", "cpu", cfg.dtype)
    path = save(source, tmp_path / "torch.npz")
    loaded = load(path, backend=cfg.name, device=cfg.device)
    assert loaded.backend.name == cfg.name and loaded.backend.dtype_name == cfg.dtype
    if cfg.device is not None:
        assert str(loaded.backend.device) == str(cfg.backend().device)
    assert_same_weights(loaded, source)
    assert_close(loaded.forward(X), source.forward(X))


@pytest.mark.parametrize("cfg", CASES)
def test_every_backend_saves_loadable_checkpoints(tmp_path, cfg):
    source = make_net(cfg.name, cfg.device, cfg.dtype)
    path = save(source, tmp_path / "net.npz")
    assert read_header(path)["backend"]["name"] == cfg.name
    loaded = load(path)
    assert loaded.backend.name == "numpy" and loaded.backend.dtype_name == cfg.dtype
    assert_same_weights(loaded, source)
    assert_close(loaded.forward(X), source.forward(X))


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


def test_frozen_parameters_stay_frozen(tmp_path):
    net = bpx.Sequential(bpx.Dense(4, 3, train_bias=False, bias=0.5), bpx.Sigmoid(),
                         bpx.Dense(3, 3, train_weight=False), dtype="float64", seed=0)
    loaded = load(save(net, tmp_path / "net.npz"))
    assert loaded.config() == net.config()
    assert loaded.config()["layers"][0]["train_bias"] is False
    trainable = {name: p.trainable for name, p in loaded.named_parameters().items()}
    assert trainable == {"layers.0.weight": True, "layers.0.bias": False,
                         "layers.2.weight": False, "layers.2.bias": True}
    before = loaded.state_dict()
    train(loaded, bpx.SGD(lr=0.5), 1)
    after = loaded.state_dict()
    for name, was_trainable in trainable.items():
        assert np.array_equal(before[name], after[name]) != was_trainable, name


# ---------------------------------------------------------------------- optimizer state
OPTIMIZERS = {
    "sgd-momentum": lambda: bpx.SGD(lr=0.05, momentum=0.9),
    "sgd-nesterov-decay": lambda: bpx.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam": lambda: bpx.Adam(lr=0.01, beta1=0.8),
    "adamw": lambda: bpx.AdamW(lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_training_resumes_exactly_from_a_checkpoint(tmp_path, make_optimizer):
    net, optimizer = make_net(), make_optimizer()
    train(net, optimizer, 3)
    path = save(net, tmp_path / "net.npz", optimizer)
    train(net, optimizer, 2)  # continue without saving
    resumed, resumed_optimizer = load(path, with_optimizer=True)
    assert type(resumed_optimizer) is type(optimizer)
    assert resumed_optimizer.hyperparameters() == optimizer.hyperparameters()
    assert resumed_optimizer.iterations == 3
    train(resumed, resumed_optimizer, 2)
    assert resumed_optimizer.iterations == optimizer.iterations
    assert_same_weights(resumed, net)


@pytest.mark.parametrize("cfg", CASES)
def test_optimizer_state_moves_to_every_backend(tmp_path, cfg):
    net, optimizer = make_net(dtype=cfg.dtype), bpx.Adam(lr=0.01)
    train(net, optimizer, 2)
    path = save(net, tmp_path / "net.npz", optimizer)
    train(net, optimizer, 1)
    resumed, resumed_optimizer = load(path, cfg.name, cfg.device, with_optimizer=True)
    for state in resumed_optimizer.state.values():
        for value in state.values():
            resumed.backend.check_array(value, "optimizer state")
            assert value.dtype == resumed.backend.dtype
    train(resumed, resumed_optimizer, 1)
    for name, value in resumed.state_dict().items():
        assert_close(value, net.state_dict()[name], dtype=cfg.dtype, err_msg=name)


def test_optimizer_state_is_cast_with_the_network(tmp_path):
    net, optimizer = make_net(dtype="float64"), bpx.SGD(lr=0.1, momentum=0.9)
    train(net, optimizer, 1)
    _, resumed = load(save(net, tmp_path / "net.npz", optimizer), dtype="float32", with_optimizer=True)
    assert {v["velocity"].dtype for v in resumed.state.values()} == {np.dtype("float32")}


def test_with_optimizer_needs_a_saved_optimizer(tmp_path):
    path = save(make_net(), tmp_path / "net.npz")
    with pytest.raises(CheckpointError, match="holds no optimizer"):
        load(path, with_optimizer=True)


def test_save_rejects_unsaveable_state(tmp_path):
    other, optimizer = make_net(), bpx.SGD(lr=0.1, momentum=0.9)
    train(other, optimizer, 1)
    with pytest.raises(ValueError, match="not parameters of this network"):
        save(make_net(), tmp_path / "net.npz", optimizer)

    class Custom(bpx.SGD):
        pass

    with pytest.raises(ValueError, match="only bpx's own optimizers"):
        save(make_net(), tmp_path / "net.npz", Custom(lr=0.1))
    net = make_net()
    net.layers[0].weight.value[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"layers\.0\.weight: it holds NaN or inf"):
        save(net, tmp_path / "net.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch, failing):
    old = make_net()
    path = save(old, tmp_path / "net.npz")
    before = path.read_bytes()
    new = make_net()
    train(new, bpx.SGD(lr=0.1), 1)

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        save(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.npz"]
    assert_same_weights(load(path), old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_follow_umask_or_the_replaced_file(tmp_path):
    path = save(make_net(), tmp_path / "net.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    save(make_net(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# ---------------------------------------------------------------------- bad files
@pytest.fixture
def good(tmp_path) -> Path:
    """A valid checkpoint with SGD momentum state."""
    net, optimizer = make_net(dtype="float32"), bpx.SGD(lr=0.1, momentum=0.9)
    train(net, optimizer, 1)
    return save(net, tmp_path / "good.npz", optimizer)


def rewrite(path: Path, target: Path, edit=None, **arrays) -> Path:
    """Copy the checkpoint at ``path`` to ``target`` with its header edited by the function ``edit`` and
    arrays replaced (``None``: removed) or added."""
    with np.load(path, allow_pickle=False) as npz:
        content = {name: npz[name] for name in npz.files}
    if edit is not None:
        edited = edit(json.loads(content["header"].tobytes()))
        content["header"] = np.frombuffer(json.dumps(edited).encode(), dtype=np.uint8)
    content.update(arrays)
    np.savez(target, **{k: v for k, v in content.items() if v is not None})
    return target


def with_key(key, value):
    return lambda h: {**h, key: value}


def flip_weight_byte(good, bad):
    data = bytearray(good.read_bytes())
    with np.load(good) as npz:
        offset = data.find(npz["layers.2.weight"].tobytes())
    data[offset + 5] ^= 0xFF
    bad.write_bytes(bytes(data))


BAD_FILES = {
    "truncated-half": (lambda g, b: b.write_bytes(g.read_bytes()[: g.stat().st_size // 2]), "truncated or corrupt"),
    "truncated-tail": (lambda g, b: b.write_bytes(g.read_bytes()[:-7]), "truncated or corrupt"),
    "flipped-byte": (flip_weight_byte, r"array 'layers.2.weight' cannot be read \(Bad CRC-32"),
    "random-bytes": (lambda g, b: b.write_bytes(np.random.default_rng(0).bytes(2000)), "not an .npz archive"),
    "text-file": (lambda g, b: b.write_text("weights: [0.1, 0.2]\n"), "not an .npz archive"),
    "empty-file": (lambda g, b: b.write_bytes(b""), "not an .npz archive"),
    "npy-file": (lambda g, b: np.save(b.open("wb"), np.zeros(3)), r"single NumPy \.npy array"),
    "no-header": (lambda g, b: rewrite(g, b, header=None), "no 'header' array"),
    "pickled-dict": (lambda g, b: np.savez(b, config={"layers": []}), "no 'header' array"),
    "object-weights": (lambda g, b: rewrite(g, b, **{"layers.0.weight": np.array({"w": 1}, dtype=object)}),
                       r"'layers.0.weight' cannot be read \(Object arrays cannot be loaded when allow_pickle=False"),
    "object-header": (lambda g, b: rewrite(g, b, **{"header": np.array({"format": FORMAT}, dtype=object)}),
                      "'header' cannot be read"),
    "header-not-bytes": (lambda g, b: rewrite(g, b, **{"header": np.zeros(3)}), "1-D uint8 array"),
    "header-not-json": (lambda g, b: rewrite(g, b, **{"header": np.frombuffer(b"\xff{", np.uint8)}),
                        "not UTF-8 JSON"),
    "header-json-list": (lambda g, b: rewrite(g, b, **{"header": np.frombuffer(b"[1]", np.uint8)}),
                         "format is None"),
    "other-format": (lambda g, b: rewrite(g, b, edit=with_key("format", "keras-weights")),
                     "format is 'keras-weights', not 'bpx-checkpoint'"),
    "future-version": (lambda g, b: rewrite(g, b, edit=with_key("version", VERSION + 1)),
                       rf"format version {VERSION + 1} is newer .* upgrade bpx"),
    "version-string": (lambda g, b: rewrite(g, b, edit=with_key("version", "1")), "invalid format version '1'"),
    "no-config": (lambda g, b: rewrite(g, b, edit=lambda h: {k: v for k, v in h.items() if k != "config"}),
                  "no 'config'"),
    "bad-dtype": (lambda g, b: rewrite(g, b, edit=with_key("dtype", "float16")), "dtype 'float16'"),
    "unknown-layer": (lambda g, b: rewrite(g, b, edit=with_key("config", {"layers": [{"type": "Conv2D"}]})),
                      "invalid architecture.*unknown layer type 'Conv2D'"),
    "transposed-weight": (lambda g, b: rewrite(g, b, **{"layers.0.weight": np.zeros((6, 4), "<f4")}),
                          r"'layers.0.weight' has shape \(6, 4\) but the architecture needs \(4, 6\)"),
    "missing-weight": (lambda g, b: rewrite(g, b, **{"layers.2.bias": None}),
                       r"weight arrays do not match the architecture: missing \['layers.2.bias'\], unexpected \[\]"),
    "extra-weight": (lambda g, b: rewrite(g, b, **{"layers.9.weight": np.zeros(2, "<f4")}),
                     r"missing \[\], unexpected \['layers.9.weight'\]"),
    "int-weights": (lambda g, b: rewrite(g, b, **{"layers.0.bias": np.zeros(6, np.int32)}), "dtype int32"),
    "nan-weights": (lambda g, b: rewrite(g, b, **{"layers.0.bias": np.full(6, np.nan, "<f4")}),
                    "'layers.0.bias' holds NaN or inf"),
    "inf-weights": (lambda g, b: rewrite(g, b, **{"layers.2.weight": np.full((6, 5), -np.inf, "<f4")}),
                    "'layers.2.weight' holds NaN or inf"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files_raise_a_clear_checkpoint_error(good, case):
    make_bad, message = case
    bad = good.with_name("bad.npz")
    make_bad(good, bad)
    with pytest.raises(CheckpointError, match=message) as info:
        load(bad)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


def drop_state_listing(h):
    return {**h, "optimizer": {**h["optimizer"], "state": {}}}


BAD_OPTIMIZERS = {
    "unknown-class": (with_key("optimizer", {"class": "Lion", "hyperparameters": {}, "iterations": 1, "state": {}}),
                      {}, "invalid optimizer.*KeyError: 'Lion'"),
    "bad-hyperparameter": (lambda h: {**h, "optimizer": {**h["optimizer"], "hyperparameters": {"lr": -1}}},
                           {}, "invalid optimizer.*learning rate"),
    "negative-iterations": (lambda h: {**h, "optimizer": {**h["optimizer"], "iterations": -2}},
                            {}, "iterations must be a non-negative int"),
    "state-not-listed": (drop_state_listing, {}, r"optimizer state arrays .*unexpected \['optim/layers.0.bias/"),
    "state-array-missing": (None, {"optim/layers.0.weight/velocity": None},
                            r"missing \['optim/layers.0.weight/velocity'\]"),
    "state-for-unknown-parameter": (
        lambda h: {**h, "optimizer": {**h["optimizer"], "state": {"layers.7.weight": ["velocity"]}}},
        {}, r"parameters the network does not have: \['layers.7.weight'\]"),
    "state-keys-of-another-optimizer": (
        lambda h: {**h, "optimizer": {**h["optimizer"], "hyperparameters": {"lr": 0.1}}},
        {}, r"layers.0.weight has \['velocity'\], but SGD with these hyperparameters keeps \[\]"),
    "state-shape": (None, {"optim/layers.0.weight/velocity": np.zeros((4, 5), "<f4")}, r"shape \(4, 5\)"),
}


@pytest.mark.parametrize("case", BAD_OPTIMIZERS.values(), ids=BAD_OPTIMIZERS.keys())
def test_bad_optimizer_state_raises_a_clear_checkpoint_error(good, case):
    header, arrays, message = case
    bad = rewrite(good, good.with_name("bad.npz"), header, **arrays)
    load(bad)  # the network alone still loads
    with pytest.raises(CheckpointError, match=message):
        load(bad, with_optimizer=True)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bpx checkpoint at this path") as info:
        load(tmp_path / "nowhere.npz")
    assert str(tmp_path / "nowhere.npz") in str(info.value)
