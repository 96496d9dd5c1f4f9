"""Each bounds and budget check of the untrusted-file readers, pinned at its exact boundary.

The files are built by hand, byte by byte; a value one past a limit must be a CheckpointError
naming the problem, and the value exactly at the limit must load.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bpx import CheckpointError
from bpx.io import save
from bpx.io.npz import CHUNK, MAX_NPY_HEADER, SLACK, NpzReader
from bpx.io.safetensors import MAX_HEADER_BYTES, SafetensorsReader, _metadata, is_safetensors


# ---------------------------------------------------------------------- .npz
def npy_bytes(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0), length: int | None = None) -> bytes:
    """A ``.npy`` member whose header text is ``header`` padded with spaces to ``length`` bytes
    (the last one a newline), in format ``version``."""
    text = header.encode("latin1")
    size = 10 if version[0] == 1 else 12
    if length is None:
        length = len(text) + 1 + (-(size + len(text) + 1) % 64)
    text += b" " * (length - len(text) - 1) + b"\n"
    packed = struct.pack("<H", length) if version[0] == 1 else struct.pack("<I", length)
    return b"\x93NUMPY" + bytes(version) + packed + text + data


def header_of(descr: str, shape: tuple[int, ...]) -> str:
    return f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"


def npz(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


F8 = np.array([1.5, -2.0], dtype="<f8")


def test_npz_budget_is_expansion_times_size_plus_slack_and_is_used_up(tmp_path):
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (2,)), F8.tobytes())})
    with NpzReader(path) as r:
        size = path.stat().st_size
        assert r.size == size
        assert r.budget == 1100 * size + SLACK
        np.testing.assert_array_equal(r.array("a"), F8)
        assert r.budget == 1100 * size + SLACK - 16
    with NpzReader(path, expansion=3) as r:
        assert r.budget == 3 * size + SLACK


def test_npz_max_bytes_is_inclusive(tmp_path):
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (2,)), F8.tobytes())})
    with NpzReader(path) as r:
        np.testing.assert_array_equal(r.array("a", max_bytes=16), F8)
    with NpzReader(path) as r, pytest.raises(CheckpointError, match=r"declares 16 bytes of data .* more than the 15 "):
        r.array("a", max_bytes=15)


def test_npz_reader_closes_its_file(tmp_path):
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (2,)), F8.tobytes())})
    with NpzReader(path) as r:
        pass
    assert r._file.closed


def test_npz_encrypted_member_is_refused_when_opened(tmp_path):
    raw = bytearray(npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (2,)), F8.tobytes())})
                    .read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 8] |= 1  # general purpose flag bit 0: encrypted
    (tmp_path / "a.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"member 'a\.npy' is encrypted"):
        NpzReader(tmp_path / "a.npz")


def test_npz_short_member_with_magic_is_bad_magic(tmp_path):
    path = npz(tmp_path / "a.npz", {"a.npy": b"\x93NUMPY\x01"})
    with NpzReader(path) as r, pytest.raises(CheckpointError, match=r"not a \.npy array \(bad magic\)"):
        r.array("a")


@pytest.mark.parametrize("version", [(1, 1), (4, 0), (0, 0)])
def test_npz_unknown_format_versions(tmp_path, version):
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (2,)), F8.tobytes(), version=version)})
    with NpzReader(path) as r, pytest.raises(CheckpointError, match=rf"unknown \.npy format version "
                                                                     rf"{version[0]}\.{version[1]}"):
        r.array("a")


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npz_format_versions_1_to_3_load(tmp_path, version):
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (2,)), F8.tobytes(), version=version)})
    with NpzReader(path) as r:
        np.testing.assert_array_equal(r.array("a"), F8)


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npz_header_of_exactly_the_maximum_length_loads(tmp_path, version):
    member = npy_bytes(header_of("<f8", (2,)), F8.tobytes(), version=version, length=MAX_NPY_HEADER)
    path = npz(tmp_path / "a.npz", {"a.npy": member})
    with NpzReader(path) as r:
        np.testing.assert_array_equal(r.array("a"), F8)
    member = npy_bytes(header_of("<f8", (2,)), F8.tobytes(), version=version, length=MAX_NPY_HEADER + 1)
    path = npz(tmp_path / "b.npz", {"a.npy": member})
    with NpzReader(path) as r, pytest.raises(CheckpointError, match=rf"declares a {MAX_NPY_HEADER + 1}-byte"):
        r.array("a")


def test_npz_32_dimensions_load_33_do_not(tmp_path):
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", (1,) * 31 + (2,)), F8.tobytes()),
                                    "b.npy": npy_bytes(header_of("<f8", (1,) * 32 + (2,)), F8.tobytes())})
    with NpzReader(path) as r:
        assert r.array("a").shape == (1,) * 31 + (2,)
        with pytest.raises(CheckpointError, match="has 33 dimensions"):
            r.array("b")


def test_npz_big_array_is_read_in_chunks(tmp_path):
    """An array of several chunks: right values, and never a second full-size copy in memory."""
    values = np.arange(8 * CHUNK // 8 + 5, dtype="<f8")
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of("<f8", values.shape), values.tobytes())})
    with NpzReader(path) as r:
        tracemalloc.start()
        try:
            array = r.array("a")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(array, values)
    assert peak < values.nbytes + 4 * CHUNK  # reading it whole would need twice its size


def test_npz_big_endian_array_is_native(tmp_path):
    big = np.array([1.5, -2.0, 3.25], dtype=">f4")
    path = npz(tmp_path / "a.npz", {"a.npy": npy_bytes(header_of(">f4", (3,)), big.tobytes())})
    with NpzReader(path) as r:
        array = r.array("a")
    assert array.dtype.isnative and array.dtype == np.float32
    np.testing.assert_array_equal(array, [1.5, -2.0, 3.25])


# ---------------------------------------------------------------------- safetensors
def st_bytes(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def st_file(tmp_path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> Path:
    path = tmp_path / "a.safetensors"
    path.write_bytes(st_bytes(header, data, length))
    return path


F4 = np.array([1.0, 2.0], dtype="<f4").tobytes()


def test_safetensors_eight_byte_file_reads_its_header_length(tmp_path):
    path = tmp_path / "a.safetensors"
    path.write_bytes(struct.pack("<Q", 0))
    with pytest.raises(CheckpointError, match="the header is not valid UTF-8 JSON"):
        SafetensorsReader(path)
    path.write_bytes(struct.pack("<Q", 0)[:7])
    with pytest.raises(CheckpointError, match="7 bytes, fewer than the 8-byte header length"):
        SafetensorsReader(path)


def test_safetensors_header_longer_than_the_file(tmp_path):
    path = st_file(tmp_path, b"{}", length=3)
    with pytest.raises(CheckpointError, match="declares a 3-byte header but the file has 2 bytes after the length"):
        SafetensorsReader(path)


def test_safetensors_header_of_exactly_the_maximum_length_loads(tmp_path):
    header = b"{}" + b" " * (MAX_HEADER_BYTES - 2)
    with SafetensorsReader(st_file(tmp_path, header)) as r:
        assert r.names == [] and r.data_start == 8 + MAX_HEADER_BYTES
    with pytest.raises(CheckpointError, match=f"declares a {MAX_HEADER_BYTES + 1}-byte header"):
        SafetensorsReader(st_file(tmp_path, header + b" "))


def test_safetensors_entry_with_an_extra_key(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "extra": 1}}
    with pytest.raises(CheckpointError, match="tensor 'w' is described by"):
        SafetensorsReader(st_file(tmp_path, header, F4))


@pytest.mark.parametrize("shape", [[2, -1], [-1], [2**63], [1, 2**63], [2, 1.0]])
def test_safetensors_bad_shapes(tmp_path, shape):
    header = {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 8]}}
    with pytest.raises(CheckpointError, match="tensor 'w' has shape"):
        SafetensorsReader(st_file(tmp_path, header, F4))


def test_safetensors_32_dimensions_and_empty_tensors_load(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1] * 31 + [2], "data_offsets": [0, 8]},
              "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]},
              "z": {"dtype": "F64", "shape": [0], "data_offsets": [8, 8]}}
    with SafetensorsReader(st_file(tmp_path, header, F4)) as r:
        np.testing.assert_array_equal(r.array("w").ravel(), [1.0, 2.0])
        assert r.array("w").shape == (1,) * 31 + (2,)
        assert r.array("e").shape == (0, 3) and r.array("z").shape == (0,)
    header["w"]["shape"] = [1] * 32 + [2]
    with pytest.raises(CheckpointError, match="tensor 'w' has shape"):
        SafetensorsReader(st_file(tmp_path, header, F4))


@pytest.mark.parametrize("offsets", [[0, 8.0], [0.0, 8], [-1, 8], [0, 9], [8, 0], [0], "08"])
def test_safetensors_bad_offsets(tmp_path, offsets):
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": offsets}}
    with pytest.raises(CheckpointError, match="tensor 'w' has data_offsets"):
        SafetensorsReader(st_file(tmp_path, header, F4))


def test_safetensors_two_tensors_in_order(tmp_path):
    header = {"b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
              "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    with SafetensorsReader(st_file(tmp_path, header, F4)) as r:
        assert r.array("a").tolist() == [1.0] and r.array("b").tolist() == [2.0]


def test_is_safetensors(tmp_path):
    assert is_safetensors(st_file(tmp_path, {}, b"")) is True
    path = tmp_path / "b.safetensors"
    path.write_bytes(struct.pack("<Q", 2) + b"{")
    assert is_safetensors(path) is True
    path.write_bytes(struct.pack("<Q", 2) + b"[]")
    assert is_safetensors(path) is False
    path.write_bytes(struct.pack("<Q", 2))
    assert is_safetensors(path) is False
    assert is_safetensors(tmp_path) is False  # a folder: open fails
    assert is_safetensors(tmp_path / "missing") is False


def metadata_of(tmp_path: Path, **fields: str):
    meta = {"format": "bpx-checkpoint", "version": "2", "dtype": "float32", "config": "{}", **fields}
    with SafetensorsReader(st_file(tmp_path, {"__metadata__": meta})) as r:
        return _metadata(r)


@pytest.mark.parametrize("version", ["0", "3", "0000001", "00000002", "", "x"])
def test_safetensors_metadata_versions_refused(tmp_path, version):
    with pytest.raises(CheckpointError, match="unsupported bpx format version"):
        metadata_of(tmp_path, version=version)


@pytest.mark.parametrize("version", ["1", "2", "000001", "000002"])
def test_safetensors_metadata_versions_accepted(tmp_path, version):
    assert metadata_of(tmp_path, version=version)["dtype"] == "float32"


def test_safetensors_metadata_counts(tmp_path):
    assert metadata_of(tmp_path, seed="0" * 18 + "7")["seed"] == 7  # 19 digits: read
    assert metadata_of(tmp_path, step_count="12")["step_count"] == 12
    for text in ("0" * 19 + "7", "x", "-1", "", "9" * 19):
        with pytest.raises(CheckpointError, match="the metadata's 'seed' is"):
            metadata_of(tmp_path, seed=text)


# ---------------------------------------------------------------------- .npz checkpoint header fields
def saved(tmp_path: Path, dtype: str = "float32", net=None, padding: int = 0, drop: tuple[str, ...] = (),
          compression: int = zipfile.ZIP_STORED, **header_changes) -> Path:
    """A checkpoint (of a small network with SGD momentum state, unless ``net``) whose header has
    ``header_changes`` applied (``None`` removes a key) and ``padding`` spaces of JSON whitespace
    appended, without the members ``drop``."""
    import io

    import bpx

    if net is None:
        net = bpx.Sequential(bpx.Dense(3, 4), bpx.Tanh(), bpx.Dense(4, 2), dtype=dtype, seed=0)
    optimizer = bpx.SGD(lr=0.1, momentum=0.9)
    net.train_step(np.ones((2, net.input_shape[0])), np.zeros((2, net.output_shape[0])), "hse", optimizer)
    path = net.save(tmp_path / "c.npz", optimizer)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist() if n not in drop}
    header = json.loads(bytes(np.load(io.BytesIO(members["header.npy"]))).decode())
    for key, value in header_changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.frombuffer(json.dumps(header).encode() + b" " * padding, np.uint8))
    members["header.npy"] = buffer.getvalue()
    return npz(tmp_path / "changed.npz", members, compression)


def refused(path: Path, message: str, **kwargs) -> None:
    import bpx

    with pytest.raises(CheckpointError, match=message):
        bpx.load(path, **kwargs)


@pytest.mark.parametrize("version", [0, -1, "2", 2.0, True])
def test_checkpoint_invalid_versions(tmp_path, version):
    refused(saved(tmp_path, version=version), "invalid format version")


@pytest.mark.parametrize("key", ["seed", "step_count", "epochs_trained"])
def test_checkpoint_counts_at_their_limits(tmp_path, key):
    import bpx

    net = bpx.load(saved(tmp_path, **{key: 2**63 - 1}))
    if key != "seed":
        assert getattr(net, key) == 2**63 - 1
    for value in (2**63, -1, 1.5, "1"):
        refused(saved(tmp_path, **{key: value}), f"the header's '{key}' is")


def test_checkpoint_missing_counts_default_to_zero(tmp_path):
    import bpx

    net = bpx.load(saved(tmp_path, step_count=None, epochs_trained=None))
    assert net.step_count == 0 and net.epochs_trained == 0


@pytest.mark.parametrize("field,value", [
    ("metrics", 5), ("metrics", ["no such metric"]), ("metrics", "accuracy"),
    ("loss", {"name": 3}), ("loss", {"name": "mse", "config": 3}), ("loss", "mse"),
    ("optimizer", {"class": 3, "hyperparameters": {}, "iterations": 0, "state": {}}),
    ("optimizer", {"class": "SGD", "hyperparameters": {}, "iterations": -1, "state": {}}),
    ("optimizer", {"class": "SGD", "hyperparameters": {}, "iterations": 0, "state": {"w": ["a", 3]}}),
    ("parameters", []), ("parameters", {"layers.0.weight": 3}),
    ("parameters", {"layers.0.weight": {"shape": [3, 4], "dtype": 1}}),
    ("parameters", {"layers.0.weight": {"shape": [3, "4"], "dtype": "<f4"}}),
    ("parameters", {"layers.0.weight": {"shape": "34", "dtype": "<f4"}}),
])
def test_checkpoint_mistyped_fields(tmp_path, field, value):
    refused(saved(tmp_path, **{field: value}), f"the header's '{field}' is")


def test_checkpoint_base_lr_must_be_positive(tmp_path):
    import bpx

    optimizer = {"class": "SGD", "hyperparameters": {"lr": 0.1, "momentum": 0.9, "nesterov": False,
                                                      "weight_decay": 0.0},
                 "iterations": 0, "state": {}, "base_lr": 0.0}
    velocities = tuple(f"optim/layers.{i}.{p}/velocity.npy" for i in (0, 2) for p in ("weight", "bias"))
    path = saved(tmp_path, optimizer=optimizer, drop=velocities)
    with pytest.raises(CheckpointError, match="invalid optimizer"):
        bpx.load(path, with_optimizer=True)


def test_checkpoint_values_must_fit_the_target_dtype(tmp_path):
    import bpx

    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    net.load_state_dict({"layers.0.weight": np.array([[1e300], [1.0]]), "layers.0.bias": np.array([0.0])})
    path = net.save(tmp_path / "big.npz")
    assert bpx.load(path).state_dict()["layers.0.weight"][0, 0] == 1e300
    with pytest.raises(CheckpointError, match=r"layers\.0\.weight"):
        bpx.load(path, dtype="float32")


def test_checkpoint_header_limit_is_16_times_the_file_size(tmp_path):
    import bpx

    big = saved(tmp_path, padding=200_000)  # stored: the file is bigger than its header
    assert bpx.load(big).step_count == 1
    deflated = saved(tmp_path, padding=1 << 20, compression=zipfile.ZIP_DEFLATED)  # 1 MiB from a few KB
    size = deflated.stat().st_size
    assert 16 * size + SLACK < 1 << 20
    refused(deflated, rf"array 'header' declares \d+ bytes of data .* more than the {16 * size + SLACK} ")


def test_checkpoint_budget_counts_parameter_members_only(tmp_path):
    import bpx

    net = bpx.Sequential(bpx.Dense(30, 30), dtype="float32", seed=0)  # 3720 bytes, more than its header
    path = saved(tmp_path, net=net)
    np.testing.assert_array_equal(bpx.load(path).state_dict()["layers.0.weight"], net.state_dict()["layers.0.weight"])
    # without the weight, the bias (248 bytes) is all there is; the optimizer's 3728 bytes do not count
    path = saved(tmp_path, net=net, drop=("layers.0.weight.npy",))
    refused(path, "declares 3720 bytes of parameters and buffers, but the file's arrays hold at most 248")


def test_checkpoint_architecture_bigger_than_the_file(tmp_path):
    config = {"layers": [{"type": "Dense", "in_features": 1000, "out_features": 1000}], "input_shape": [1000]}
    refused(saved(tmp_path, config=config), "declares 4004000 bytes of parameters and buffers, more than a file of")


def test_checkpoint_buffer_listing_must_match(tmp_path):
    import bpx

    net = bpx.Sequential(bpx.Dense(3, 4), bpx.BatchNorm(4), bpx.Dense(4, 2), dtype="float32", seed=0)
    assert bpx.load(saved(tmp_path, net=net)).state_dict().keys() == net.state_dict().keys()
    refused(saved(tmp_path, net=net, buffers={}), "the header's 'buffers' do not match the architecture")


# ---------------------------------------------------------------------- untrusted.py
def test_strict_json_depth_limit_is_inclusive():
    from bpx.io.untrusted import MAX_JSON_DEPTH, json_depth, strict_json

    assert json_depth(5) == 0 and json_depth("x") == 0
    assert json_depth([]) == 1 and json_depth({"a": [1, {"b": []}]}) == 4
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_depth(strict_json(deepest)) == MAX_JSON_DEPTH
    with pytest.raises(ValueError, match=f"deeper than {MAX_JSON_DEPTH} levels"):
        strict_json("[" + deepest + "]")


def test_strict_json_floats():
    from bpx.io.untrusted import strict_json

    assert strict_json("[1.5, -2e300, 0.0]") == [1.5, -2e300, 0.0]
    for text in ("[1.5, 1e400]", "-1e400", "NaN", "[Infinity]"):
        with pytest.raises(ValueError):
            strict_json(text)


def test_strict_json_names_the_duplicate_key():
    from bpx.io.untrusted import strict_json

    assert strict_json('{"a": 1, "b": {"a": 2}}') == {"a": 1, "b": {"a": 2}}
    with pytest.raises(ValueError, match="the key 'b' appears twice in one object"):
        strict_json('{"a": 1, "b": 2, "c": 3, "b": 4}')


def test_existing_file_hint_only_when_the_suffixed_file_exists(tmp_path):
    from bpx.io.untrusted import existing_file

    with pytest.raises(FileNotFoundError) as info:
        existing_file(tmp_path / "x", ".npz")
    assert "did you mean" not in str(info.value)
    (tmp_path / "x.npz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"did you mean 'x\.npz'\?"):
        existing_file(tmp_path / "x", ".npz")
    with pytest.raises(FileNotFoundError) as info:
        existing_file(tmp_path / "y.npz", ".npz")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("error", [OSError("disk on fire"), ValueError("bad"), KeyboardInterrupt()])
def test_untrusted_file_is_closed_when_parsing_fails(tmp_path, error):
    from bpx.io.untrusted import UntrustedFile

    opened = []

    class Failing(UntrustedFile):
        def _parse(self):
            opened.append(self)
            raise error

    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    expected = CheckpointError if isinstance(error, OSError) else type(error)
    with pytest.raises(expected):
        Failing(path)
    assert opened[0]._file.closed
    with UntrustedFile(path) as f:
        assert f.size == 3 and not f._file.closed
    assert f._file.closed


# ---------------------------------------------------------------------- load_safetensors
def test_safetensors_dtype_without_metadata_is_float64_when_any_tensor_is_f64(tmp_path):
    import bpx
    from bpx.io import load_safetensors

    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    w = np.array([[0.5], [-1.25]], dtype="<f8").tobytes()
    b = np.array([2.0], dtype="<f4").tobytes()
    header = {"layers.0.weight": {"dtype": "F64", "shape": [2, 1], "data_offsets": [0, 16]},
              "layers.0.bias": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]}}
    loaded = load_safetensors(st_file(tmp_path, header, w + b), architecture=net.config())
    assert loaded.backend.dtype_name == "float64"
    np.testing.assert_array_equal(loaded.state_dict()["layers.0.weight"], [[0.5], [-1.25]])
    header["layers.0.weight"]["dtype"] = "F32"
    header["layers.0.weight"]["data_offsets"] = [0, 8]
    header["layers.0.bias"]["data_offsets"] = [8, 12]
    w32 = np.array([[0.5], [-1.25]], dtype="<f4").tobytes()
    loaded = load_safetensors(st_file(tmp_path, header, w32 + b), architecture=net.config())
    assert loaded.backend.dtype_name == "float32"


def test_safetensors_explicit_dtype_wins(tmp_path):
    import bpx

    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    path = save(net, tmp_path / "n.safetensors")
    assert bpx.load(path).backend.dtype_name == "float64"
    assert bpx.load(path, dtype="float32").backend.dtype_name == "float32"


def test_loading_onto_a_meta_device_is_refused(tmp_path):
    pytest.importorskip("torch")
    import bpx

    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float32", seed=0)
    for path in (save(net, tmp_path / "n.safetensors"), save(net, tmp_path / "n.npz")):
        with pytest.raises(bpx.StateError, match="meta"):
            bpx.load(path, backend="torch", device="meta")
