"""safetensors checkpoints: round trips, interoperability with the safetensors package, wiring
into ``save``/``bpx.load``, hostile files, and a byte-mutation fuzz test (only CheckpointError
escapes)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpx
from bpx import CheckpointError
from bpx.io.safetensors import MAX_HEADER_BYTES, is_safetensors, load_safetensors, save_safetensors
from bpx.testing import assert_close

X = np.linspace(-1, 1, 24).reshape(6, 4)
Y = np.arange(6) % 3
FUZZ = settings(max_examples=int(os.environ.get("BPX_FUZZ_EXAMPLES", "0")) or 60, deadline=None,
                derandomize="BPX_FUZZ_RANDOM" not in os.environ, database=None, suppress_health_check=list(HealthCheck))


def _trained(dtype: str = "float32", optimizer: bpx.Optimizer | None = None) -> tuple[bpx.Sequential, bpx.Optimizer]:
    net = bpx.Sequential(bpx.Dense(4, 5), bpx.BatchNorm(5), bpx.Tanh(), bpx.Dense(5, 3), dtype=dtype, seed=3)
    optimizer = optimizer or bpx.Adam(lr=0.01)
    net.fit(X, Y, loss="softmax_cross_entropy", optimizer=optimizer, epochs=2, batch_size=3, verbose=0)
    return net, optimizer


def _write(path: Path, header: dict, data: bytes = b"", length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_with_optimizer(tmp_path: Path, dtype: str) -> None:
    net, adam = _trained(dtype)
    path = net.save(tmp_path / "model", adam, format="safetensors")
    assert path.name == "model.safetensors" and is_safetensors(path)
    loaded, opt = bpx.load(path, with_optimizer=True)
    assert isinstance(loaded, bpx.Sequential) and loaded.backend.dtype_name == dtype
    assert_close(loaded.predict(X), net.predict(X), factor=0.01)
    assert loaded.loss == net.loss and loaded.metrics == net.metrics and loaded.step_count == net.step_count
    assert loaded.seed == net.seed and opt.iterations == adam.iterations and type(opt) is bpx.Adam
    for name, p in net.named_parameters().items():  # continuing gives the same step
        for key, value in adam.parameter_state(net.store)[p].items():
            assert_close(opt.parameter_state(loaded.store)[loaded.named_parameters()[name]][key], value)


def test_format_chosen_by_suffix_and_npz_still_default(tmp_path: Path) -> None:
    net, _ = _trained()
    assert is_safetensors(net.save(tmp_path / "a.safetensors"))
    npz = net.save(tmp_path / "b")
    assert npz.suffix == ".npz" and not is_safetensors(npz)
    assert_close(bpx.load(npz).predict(X), bpx.load(tmp_path / "a.safetensors").predict(X))
    with pytest.raises(bpx.BpxValueError, match="format"):
        net.save(tmp_path / "c", format="pickle")


def test_files_load_with_the_safetensors_package(tmp_path: Path) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")
    net, adam = _trained()
    path = save_safetensors(net, tmp_path / "m.safetensors", adam)
    tensors = st_numpy.load_file(path)
    state = net.state_dict()
    assert set(state) <= set(tensors) and any(k.startswith("optim/") for k in tensors)
    for name, value in state.items():
        np.testing.assert_array_equal(tensors[name], value)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "bpx-checkpoint" and json.loads(meta["config"]) == net.config()
    assert meta["dtype"] == "float32" and json.loads(meta["loss"])["name"] == "softmax_cross_entropy"


def test_foreign_file_needs_an_architecture(tmp_path: Path) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")
    net, _ = _trained("float64")
    path = tmp_path / "foreign.safetensors"
    st_numpy.save_file(net.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"no bpx metadata.*architecture="):
        bpx.load(path)
    loaded = load_safetensors(path, architecture=net, network_class=bpx.Sequential)
    assert loaded.backend.dtype_name == "float64"  # F64 tensors
    assert_close(loaded.predict(X), net.predict(X))
    half = {k: v.astype(np.float16) for k, v in net.state_dict().items()}
    st_numpy.save_file(half, tmp_path / "half.safetensors")
    loaded = load_safetensors(tmp_path / "half.safetensors", architecture=net.config())
    assert loaded.backend.dtype_name == "float32"
    renamed = {k.replace("layers.", "l."): v for k, v in net.state_dict().items()}
    st_numpy.save_file(renamed, tmp_path / "renamed.safetensors")
    with pytest.raises(CheckpointError, match="do not match the architecture: missing"):
        load_safetensors(tmp_path / "renamed.safetensors", architecture=net)


def test_bfloat16_is_widened(tmp_path: Path) -> None:
    net = bpx.Sequential(bpx.Dense(2, 1, weight=[[1.5], [-2.0]], bias=0.25), seed=0)
    bits = {k: (v.astype(np.float32).view(np.uint32) >> 16).astype("<u2") for k, v in net.state_dict().items()}
    header, data, offset = {}, b"", 0
    for name in sorted(bits):
        raw = bits[name].tobytes()
        header[name] = {"dtype": "BF16", "shape": list(bits[name].shape), "data_offsets": [offset, offset + len(raw)]}
        data, offset = data + raw, offset + len(raw)
    loaded = load_safetensors(_write(tmp_path / "bf.safetensors", header, data), architecture=net)
    assert_close(loaded.state_dict()["layers.0.weight"], [[1.5], [-2.0]])


def test_atomic_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net, _ = _trained()
    path = net.save(tmp_path / "m.safetensors")
    before = path.read_bytes()
    monkeypatch.setattr("bpx.io.safetensors._header_bytes", lambda *a: (b"partial", ["no such tensor"]))
    with pytest.raises(KeyError):  # fails half-way through writing
        net.save(path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.safetensors"]
    with pytest.raises(bpx.CheckpointWriteError, match="does not exist"):
        net.save(tmp_path / "missing" / "m.safetensors")


@pytest.mark.parametrize(("header", "data", "length", "match"), [
    ({}, b"", 1 << 40, "declares a .*-byte header"),
    ({}, b"", MAX_HEADER_BYTES + 1, "at most"),
    ({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, None, "dtype 'I64'"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "needs 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None, "within"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "gap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, None, "cover 4 bytes"),
    ({"a": {"dtype": "F32", "shape": [10**10, 10**10], "data_offsets": [0, 4]}}, b"\0" * 4, None, "needs"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "non-negative"),
    ({"a": {"dtype": "F32", "shape": [1] * 33, "data_offsets": [0, 4]}}, b"\0" * 4, None, "at most 32"),
    ({"a": [1, 2]}, b"", None, "not {'dtype'"),
    ({"__metadata__": {"format": 3}}, b"", None, "not an object of strings"),
    ({"__metadata__": {"format": "bpx-checkpoint", "version": "99"}}, b"", None, "version '99'"),
    ({"__metadata__": {"format": "bpx-checkpoint", "version": "2", "dtype": "float32", "config": "[]"}}, b"",
     None, "'config' is"),
    ({"__metadata__": {"format": "bpx-checkpoint", "version": "2", "dtype": "float32",
                       "config": json.dumps({"layers": [{"type": "Dense", "in_features": 10**6,
                                                         "out_features": 10**6}]})}},
     b"", None, "needs 1000001000000 parameter"),
])
def test_hostile_headers(tmp_path: Path, header: dict, data: bytes, length: int | None, match: str) -> None:
    path = _write(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(CheckpointError, match=match) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("content", "match"), [
    (b"", "fewer than the 8-byte"),
    (struct.pack("<Q", 5) + b"[1,2]", "not a JSON object"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid UTF-8 JSON"),
    (struct.pack("<Q", 14) + b'{"a":1, "a":2}', "appears twice"),
    (struct.pack("<Q", 10) + b'{"a": NaN}', "not valid"),
    (struct.pack("<Q", 400) + b"[" * 200 + b"]" * 200, "deeper|RecursionError|not a JSON object"),
])
def test_hostile_bytes(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_safetensors(path)


def test_non_finite_and_wrong_shapes(tmp_path: Path) -> None:
    st_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")
    net = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    state = net.state_dict()
    st_numpy.save_file({**state, "layers.0.bias": np.array([np.nan, 0], np.float32)}, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_safetensors(tmp_path / "nan.safetensors", architecture=net)
    st_numpy.save_file({**state, "layers.0.bias": np.zeros(3, np.float32)}, tmp_path / "shape.safetensors")
    with pytest.raises(CheckpointError, match="has shape"):
        load_safetensors(tmp_path / "shape.safetensors", architecture=net)
    with pytest.raises(FileNotFoundError):
        load_safetensors(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="holds no optimizer"):
        load_safetensors(net.save(tmp_path / "plain.safetensors"), with_optimizer=True)


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    net, adam = _trained()
    return save_safetensors(net, tmp_path_factory.mktemp("seed") / "seed.safetensors", adam).read_bytes()


@FUZZ
@given(data=st.data())
def test_fuzz_only_checkpoint_errors_escape(seed_file: bytes, data: st.DataObject, tmp_path_factory) -> None:
    content = bytearray(seed_file)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "length", "text"]))
        at = data.draw(st.integers(0, max(len(content) - 1, 0)))
        if kind == "flip" and content:
            content[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "byte" and content:
            content[at] = data.draw(st.integers(0, 255))
        elif kind == "truncate":
            del content[at:]
        elif kind == "insert":
            content[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del content[at:at + data.draw(st.integers(1, 16))]
        elif kind == "length" and len(content) >= 8:
            content[:8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1)))
        elif kind == "text":  # a plausible edit of the JSON header: a digit or a quote somewhere in it
            length = struct.unpack("<Q", bytes(content[:8]))[0] if len(content) >= 8 else 0
            if 8 < 8 + length <= len(content):
                pos = data.draw(st.integers(8, 8 + length - 1))
                content[pos] = ord(data.draw(st.sampled_from(list('0123456789-"{}[],:e. '))))
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    path.write_bytes(bytes(content))
    try:
        net, opt = load_safetensors(path, with_optimizer=True)
    except CheckpointError as err:
        assert str(path) in str(err)
        return
    assert net.store.check_finite("fuzz") is None and opt is not None
