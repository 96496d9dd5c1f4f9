"""Checkpoints are untrusted input: every zip-level defect, every crafted ``.npy`` or JSON header
and every oversized declaration is a CheckpointError naming the file, raised before anything
large is allocated (measured with tracemalloc). ``numpy.load``, which bpx 0.1 used, fails on many
of these files with MemoryError or RecursionError, or allocates gigabytes for a few kilobytes."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpx
from bpx import CheckpointError, load
from bpx.io import read_header
from bpx.io.checkpoint import HEADER_EXPANSION, MAX_EXPANSION
from bpx.io.npz import SLACK, NpzReader
from bpx.nn.layer import type_name
from bpx.nn.parameter import Buffer

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------- building files by hand
def npy(header: str | bytes, data: bytes = b"", version: int = 1) -> bytes:
    """A ``.npy`` member with exactly this header text (padded as numpy pads it) and data."""
    text = header.encode("latin1") if isinstance(header, str) else header
    size = 10 if version == 1 else 12
    text += b" " * ((64 - (size + len(text) + 1) % 64) % 64) + b"\n"
    length = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text + data


def npy_header(descr: str, shape: tuple[int, ...]) -> str:
    return f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"


def array_member(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def header_array(header: dict | bytes) -> np.ndarray:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return np.frombuffer(raw, np.uint8)


def write_zip(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]],
              compression: int = zipfile.ZIP_STORED) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression) as z:
        warnings.simplefilter("ignore")  # duplicate names on purpose
        for name, data in (members.items() if isinstance(members, dict) else members):
            z.writestr(name, data)
    return path


def checkpoint_header(layers: list[dict], dtype: str = "float32", **extra) -> dict:
    return {"format": "bpx-checkpoint", "version": 2, "dtype": dtype, "config": {"layers": layers}, **extra}


@pytest.fixture
def good(tmp_path) -> Path:
    """A small valid checkpoint with SGD momentum state."""
    net = bpx.Sequential(bpx.Dense(3, 4), bpx.Tanh(), bpx.Dense(4, 2), dtype="float32", seed=0)
    optimizer = bpx.SGD(lr=0.1, momentum=0.9)
    net.train_step(np.ones((2, 3)), np.zeros((2, 2)), "hse", optimizer)
    return net.save(tmp_path / "good.npz", optimizer)


def entries(data: bytes) -> tuple[list[dict[str, int | str]], int]:
    """The central-directory entries of a zip (offsets of each entry, its local header and its
    data) and the offset of the end-of-central-directory record."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _, offset = struct.unpack_from("<HII", data, eocd + 10)
    found = []
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        local = struct.unpack_from("<I", data, offset + 42)[0]
        local_name, local_extra = struct.unpack_from("<HH", data, local + 26)
        found.append({"name": data[offset + 46:offset + 46 + name_len].decode(), "central": offset, "local": local,
                      "data": local + 30 + local_name + local_extra})
        offset += 46 + name_len + extra_len + comment_len
    return found, eocd


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def entry(data: bytes, name: str) -> dict:
    return next(e for e in entries(data)[0] if e["name"] == name)


def assert_refused(path: Path, message: str = "", **kwargs) -> CheckpointError:
    with pytest.raises(CheckpointError, match=message or None) as info:
        load(path, **kwargs)
    assert str(info.value).startswith(f"cannot load checkpoint {str(path)!r}: ")
    return info.value


def peak_while_refusing(path: Path, message: str = "", **kwargs) -> int:
    """Peak traced memory (bytes) of a load that must raise CheckpointError."""
    tracemalloc.start()
    try:
        assert_refused(path, message, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------- 1. zip-level defects
def central(field: int, fmt: str, value, name: str = "layers.0.weight.npy"):
    return lambda data: patch(data, entry(data, name)["central"] + field, fmt, value)


def local(field: int, fmt: str, value, name: str = "layers.0.weight.npy"):
    return lambda data: patch(data, entry(data, name)["local"] + field, fmt, value)


def eocd(field: int, fmt: str, value):
    return lambda data: patch(data, data.rfind(b"PK\x05\x06") + field, fmt, value)


def flip_data_byte(name: str):
    def edit(data: bytes) -> bytes:
        offset = entry(data, name)["data"] + 140  # past the 128-byte .npy header
        return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]

    return edit


MIDDLE = "layers.2.weight.npy"  # neither the first member (the file's magic) nor the header
#: Defects zipfile raises on (message: what the CheckpointError says; "" where it depends on the
#: Python version), and ``None`` for fields zipfile ignores: those files must load unchanged.
ZIP_DEFECTS = {
    "encrypted": (lambda d: local(6, "<H", 1)(central(8, "<H", 1)(d)), "member 'layers.0.weight.npy' is encrypted"),
    "encrypted-header": (central(8, "<H", 0x9, "header.npy"), "member 'header.npy' is encrypted"),
    "bzip2": (central(10, "<H", zipfile.ZIP_BZIP2), "uses compression method 12"),
    "lzma": (central(10, "<H", zipfile.ZIP_LZMA), "uses compression method 14"),
    "aes": (central(10, "<H", 99), "uses compression method 99"),
    "unknown-method": (central(10, "<H", 0xFFFF), "uses compression method 65535"),
    "deflated-but-stored": (central(10, "<H", zipfile.ZIP_DEFLATED), "'layers.0.weight' cannot be read"),
    "version-needed": (central(6, "<B", 0xFF), r"unsupported .npz archive \(NotImplementedError: zip file version"),
    "strong-encryption": (central(8, "<H", 0x40), r"NotImplementedError: strong encryption"),
    "patched-data": (central(8, "<H", 0x20), r"NotImplementedError: compressed patched data"),
    "central-crc": (central(16, "<I", 0xDEADBEEF), r"'layers.0.weight' cannot be read \(BadZipFile: Bad CRC-32"),
    "data-crc": (flip_data_byte(MIDDLE), r"'layers.2.weight' cannot be read \(BadZipFile: Bad CRC-32"),
    "header-crc": (flip_data_byte("header.npy"), ""),
    "compressed-size-short": (central(20, "<I", 100), "'layers.0.weight'"),
    "uncompressed-size": (central(24, "<I", 0x7FFFFFFF), "declares 48 bytes of data but its member holds"),
    "local-offset": (central(42, "<I", 7, MIDDLE), "'layers.2.weight' cannot be read"),
    "local-offset-past-end": (central(42, "<I", 0xFFFFFF00, MIDDLE), "'layers.2.weight' cannot be read"),
    "local-signature": (local(0, "<I", 0, MIDDLE), "'layers.2.weight' cannot be read"),
    "local-name": (local(30, "<B", ord("X"), MIDDLE), "'layers.2.weight' cannot be read"),
    "local-method": (local(8, "<H", 99, MIDDLE), None),
    "central-signature": (central(0, "<I", 0), "truncated, corrupt or unsupported"),
    "central-name-length": (central(28, "<H", 0xFFFF), ""),
    "central-extra-length": (central(30, "<H", 0xFFFF), ""),
    "directory-offset": (eocd(16, "<I", 1), ""),
    "directory-offset-huge": (eocd(16, "<I", 0xFFFFFFF0), ""),
    "directory-size": (eocd(12, "<I", 0xFFFFFFF0), "truncated, corrupt or unsupported"),
    "no-end-record": (lambda d: d[:d.rfind(b"PK\x05\x06")], "truncated, corrupt or unsupported"),
    "compressed-size-huge": (central(20, "<I", 0xFFFFFFF0), None),
    "entry-count-zero": (lambda d: eocd(8, "<H", 0)(eocd(10, "<H", 0)(d)), None),
    "entry-count-high": (lambda d: eocd(8, "<H", 999)(eocd(10, "<H", 999)(d)), None),
    "multi-disk": (eocd(4, "<H", 3), None),
    "comment-length": (eocd(20, "<H", 0xFFFF), None),
}


@pytest.mark.parametrize("case", ZIP_DEFECTS.values(), ids=ZIP_DEFECTS.keys())
def test_every_zip_defect_is_a_checkpoint_error_naming_the_file(good, case):
    edit, message = case
    bad = good.with_name("bad.npz")
    bad.write_bytes(edit(good.read_bytes()))
    if message is not None:
        assert_refused(bad, message, with_optimizer=True)
        return
    net, optimizer = load(bad, with_optimizer=True)
    expected, expected_optimizer = load(good, with_optimizer=True)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, expected.state_dict()[name])
    for key, value in optimizer.state.items():
        np.testing.assert_array_equal(value, expected_optimizer.state[key])


@pytest.mark.parametrize("members", [
    [("header.npy", b"1"), ("header.npy", b"2")],
    [("layers.0.weight.npy", b""), ("header.npy", b""), ("layers.0.weight.npy", b"")],
    [("header.npy", b""), ("header.npy\0hidden", b"")],  # zipfile cuts names at NUL
], ids=["header", "weight", "nul-byte"])
def test_duplicate_member_names_are_refused(tmp_path, members):
    assert_refused(write_zip(tmp_path / "dup.npz", members), "appears twice")


def test_other_members_are_refused(tmp_path):
    assert_refused(write_zip(tmp_path / "x.npz", {"header.npy": b"", "README.txt": b"hi"}),
                   "member 'README.txt' is not a .npy array")
    assert_refused(write_zip(tmp_path / "x.npz", {"folder/": b""}), "member 'folder/' is not a .npy array")


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_a_truncation_anywhere_is_a_checkpoint_error(tmp_path, compressed):
    net = bpx.Sequential(bpx.Dense(2, 1), seed=0)
    path = net.save(tmp_path / "net.npz", bpx.SGD(momentum=0.5))
    if compressed:
        arrays = dict(np.load(path))
        np.savez_compressed(path, **arrays)
        load(path, with_optimizer=True)  # a deflated checkpoint loads
    data = path.read_bytes()
    found, end = entries(data)
    marks = [o for e in found for o in (e["central"], e["local"], e["data"], e["data"] + 10, e["data"] + 128)]
    near = {o + d for o in marks for d in range(-2, 12)}  # every field of the zip and .npy headers
    cut = tmp_path / "cut.npz"
    for size in sorted(near | set(range(0, len(data), 7)) | set(range(end - 3, len(data)))):
        if 0 <= size < len(data):
            cut.write_bytes(data[:size])
            assert_refused(cut, with_optimizer=True)


# ---------------------------------------------------------------------- 2. crafted headers
def test_deeply_nested_json_headers_are_refused(tmp_path):
    for depth, message in ((100_000, "RecursionError"), (70, "nests deeper than 64 levels")):
        text = b'{"format": "bpx-checkpoint", "x": ' + b"[" * depth + b"]" * depth + b"}"
        path = write_zip(tmp_path / "deep.npz", {"header.npy": array_member(header_array(text))})
        assert_refused(path, message)
    deep_config = {"type": "Dense", "in_features": 2, "out_features": 2, "init": {}}
    inner = deep_config
    for _ in range(80):  # deep, but well within what json itself parses: refused before anything recurses
        inner["init"] = {"x": {}}
        inner = inner["init"]["x"]
    header = array_member(header_array(checkpoint_header([deep_config])))
    path = write_zip(tmp_path / "deep.npz", {"header.npy": header})
    assert_refused(path, "nests deeper")


CRAFTED_NPY_HEADERS = {
    # numpy parses the header with ast.literal_eval: deep unary minus chains end in RecursionError
    "unary-recursion": "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "-" * 3000 + "1,), }",
    "nested-parens": "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 150 + "4," + ")" * 150 + ", }",
    "python-call": "{'descr': '<f4', 'fortran_order': False, 'shape': (__import__('os').getpid(),), }",
    "negative-dim": npy_header("<f4", (-4, 3)),
    "float-dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (4.0, 3), }",
    "superscript-digit": "{'descr': '<f4', 'fortran_order': False, 'shape': (4, ³), }",
    "huge-dim": npy_header("<f4", (10**19, 1)),
    "too-many-dims": npy_header("<f4", (1,) * 33),
    "object-dtype": npy_header("|O", (4, 3)),
    "unicode-dtype": npy_header("<U4", (4, 3)),
    "structured-dtype": "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4, 3), }",
    "float16": npy_header("<f2", (4, 3)),
    "fortran-order": "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }",
    "keys-reordered": "{'shape': (4, 3), 'fortran_order': False, 'descr': '<f4', }",
    "extra-key": "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), 'x': 1, }",
    "missing-key": "{'descr': '<f4', 'shape': (4, 3), }",
    "one-dim-without-comma": "{'descr': '<f4', 'fortran_order': False, 'shape': (12), }",
    "trailing-code": npy_header("<f4", (4, 3)) + " + 1",
    "not-a-dict": "[1, 2, 3]",
    "empty": "",
}


@pytest.mark.parametrize("header", CRAFTED_NPY_HEADERS.values(), ids=CRAFTED_NPY_HEADERS.keys())
def test_crafted_npy_headers_are_refused_without_being_evaluated(good, header):
    arrays = dict(np.load(good))
    members = {f"{name}.npy": array_member(value) for name, value in arrays.items()}
    members["layers.0.weight.npy"] = npy(header, arrays["layers.0.weight"].tobytes())
    bad = write_zip(good.with_name("bad.npz"), members)
    assert_refused(bad, r"array 'layers.0.weight' (has a malformed .npy header|has dtype|is stored in Fortran"
                        r"|has \d+ dimensions|declares)")


def test_npy_header_length_and_version_are_checked(good, tmp_path):
    arrays = dict(np.load(good))
    members = {f"{name}.npy": array_member(value) for name, value in arrays.items()}
    for data, message in [
        (npy(npy_header("<f4", (3, 4)) + " " * 5000), "declares a 5.*-byte .npy header"),
        (b"\x93NUMPY\x09\x00" + members["layers.0.weight.npy"][8:], "has an unknown .npy format version 9.0"),
        (b"\x93NUMPY\x01\x01" + members["layers.0.weight.npy"][8:], "has an unknown .npy format version 1.1"),
        (b"\x93NUMPX" + members["layers.0.weight.npy"][6:], "is not a .npy array \\(bad magic\\)"),
        (members["layers.0.weight.npy"][:60], "has a truncated .npy header"),
    ]:
        bad = write_zip(tmp_path / "bad.npz", {**members, "layers.0.weight.npy": data})
        assert_refused(bad, "array 'layers.0.weight' " + message)


@SETTINGS
@given(dtype=st.sampled_from(["<f4", ">f4", "<f8", ">f8", "|u1"]),
       shape=st.lists(st.integers(0, 4), max_size=5).map(tuple), version=st.sampled_from([(1, 0), (2, 0), (3, 0)]))
def test_the_npy_grammar_reads_everything_numpy_writes(tmp_path_factory, dtype, shape, version):
    values = np.arange(np.prod(shape, dtype=int)).reshape(shape).astype(dtype)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, values, version=version)
    path = write_zip(tmp_path_factory.mktemp("npy") / "a.npz", {"a.npy": buffer.getvalue()})
    with NpzReader(path) as npz:
        read = npz.array("a", dtypes={dtype}, max_bytes=1 << 20)
    assert read.shape == shape and read.dtype == np.dtype(dtype).newbyteorder("=") and read.dtype.isnative
    assert read.flags.writeable and read.flags.c_contiguous
    np.testing.assert_array_equal(read, values)


# ---------------------------------------------------------------------- 3. sizes checked before allocation
def test_npy_members_declaring_huge_arrays_allocate_nothing(good, tmp_path):
    """bpx 0.1 (numpy.load) allocated what each member declared: 1.3 GiB for this 3.6 KB file, and
    MemoryError for 10**12 floats."""
    arrays = dict(np.load(good))
    members = {f"{name}.npy": array_member(value) for name, value in arrays.items()}
    for shape in [(170_000_000,), (10**12,), (4, 10**17)]:
        members["layers.0.weight.npy"] = npy(npy_header("<f4", shape), arrays["layers.0.weight"].tobytes())
        bad = write_zip(tmp_path / "bad.npz", members)
        assert bad.stat().st_size < 4000
        peak = peak_while_refusing(bad, r"array 'layers.0.weight' has shape")
        assert peak < 256 * 1024
        # the same member in a file without an architecture to compare with: the budget refuses it
        lone = write_zip(tmp_path / "lone.npz", {"a.npy": members["layers.0.weight.npy"]})
        tracemalloc.start()
        try:
            with NpzReader(lone) as npz, pytest.raises(CheckpointError, match=r"declares .* bytes of data"):
                npz.array("a")
            assert tracemalloc.get_traced_memory()[1] < 256 * 1024
        finally:
            tracemalloc.stop()


def test_a_header_bomb_is_refused_before_it_is_read(tmp_path):
    bomb = header_array(b" " * (4 << 20))  # 4 MiB of JSON whitespace deflates to about 4 KB
    path = write_zip(tmp_path / "bomb.npz", {"header.npy": array_member(bomb)}, zipfile.ZIP_DEFLATED)
    size = path.stat().st_size
    assert size < 10_000
    peak = peak_while_refusing(path, rf"array 'header' declares {4 << 20} bytes of data .* more than the "
                                     rf"{HEADER_EXPANSION * size + SLACK}")
    assert peak < 256 * 1024
    nested = b"[" + b"{}," * 60_000 + b"{}]"  # 180 KB of tiny objects would need ~4 MB of Python objects
    path = write_zip(tmp_path / "objects.npz", {"header.npy": array_member(header_array(nested))}, zipfile.ZIP_DEFLATED)
    assert peak_while_refusing(path, "array 'header' declares") < 256 * 1024


@pytest.mark.parametrize("layers, message", [
    ([{"type": "Dense", "in_features": 100_000, "out_features": 100_000}], r"declares 40000400000 bytes of param"),
    ([{"type": "Conv2D", "in_channels": 10**6, "out_channels": 10**6, "kernel_size": 3}], "bytes of parameters"),
    ([{"type": "BatchNorm", "features": 10**12}], "bytes of parameters and buffers"),
    ([{"type": "Dense", "in_features": 3000, "out_features": 3000, "weight": 0.5}], "explicit weight values"),
    ([{"type": "Dense", "in_features": 4, "out_features": 10**9, "bias": 0.5}], "explicit bias values"),
], ids=["dense", "conv", "batchnorm", "explicit-weight", "explicit-bias"])
def test_an_architecture_declaring_huge_layers_is_refused_before_it_is_built(tmp_path, layers, message):
    header = checkpoint_header(layers)
    path = write_zip(tmp_path / "arch.npz", {"header.npy": array_member(header_array(header))})
    assert peak_while_refusing(path, message) < 512 * 1024


class HugeBuffer(bpx.Layer):
    """A layer with only a buffer (no parameter), of a size its configuration declares."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.table = Buffer("table", (size,))

    def buffers(self):
        return [self.table]

    def config(self):
        return {"size": self.size}


def test_buffers_count_towards_the_budget(tmp_path):
    header = checkpoint_header([{"type": "Dense", "in_features": 2, "out_features": 2},
                                {"type": type_name(HugeBuffer), "size": 10**10}])
    path = write_zip(tmp_path / "buffers.npz", {"header.npy": array_member(header_array(header))})
    assert peak_while_refusing(path, "declares 40000000024 bytes of parameters and buffers") < 512 * 1024


def test_all_arrays_together_stay_within_the_budget(tmp_path, monkeypatch):
    """Each member within the limits, but together more than the budget (MAX_EXPANSION × file
    size): refused at the array that crosses it, before reading it. (With deflate's best ratio
    below MAX_EXPANSION, only overlapping members could do this; the budget is lowered here.)"""
    net, optimizer = bpx.Sequential(bpx.Dense(200, 200, weight=0.0), dtype="float64", seed=0), bpx.Adam()
    net.train_step(np.ones((2, 200)), np.ones((2, 200)), "hse", optimizer)
    path = net.save(tmp_path / "net.npz", optimizer)
    np.savez_compressed(path, **dict(np.load(path)))  # 3 x 320 KB of arrays, mostly zeros: about 8 KB
    size = path.stat().st_size
    monkeypatch.setattr("bpx.io.checkpoint.MAX_EXPANSION", (700_000 - SLACK) // size)
    load(path)  # the weights fit
    peak = peak_while_refusing(path, r"array 'optim/layers.0.weight/[mv]' declares 320000 bytes", with_optimizer=True)
    assert peak < 4 * 700_000  # a small multiple of the budget: the loaded weights and their copies


def test_many_layers_need_a_file_that_holds_them(tmp_path):
    """Each layer costs work to build: a small file cannot declare a huge list of them (the header
    is limited to HEADER_EXPANSION bytes per byte of file)."""
    header = checkpoint_header([{"type": "Identity"}] * 200_000, input_shape=[1])
    header["config"]["input_shape"] = [1]
    path = write_zip(tmp_path / "layers.npz", {"header.npy": array_member(header_array(header))}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 100_000
    assert peak_while_refusing(path, "array 'header' declares") < 512 * 1024


def test_limits_are_far_above_what_real_checkpoints_need(good):
    header = read_header(good)
    assert len(json.dumps(header)) < good.stat().st_size <= HEADER_EXPANSION * good.stat().st_size
    assert MAX_EXPANSION > 1032  # deflate's best ratio: any deflated checkpoint fits the budget
