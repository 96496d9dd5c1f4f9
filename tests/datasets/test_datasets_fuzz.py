"""Byte-level fuzzing of read_idx: for any bytes, raw or gzip-compressed, it returns exactly the
array the file describes or raises DatasetError, with memory bounded by the data actually there.

Deterministic (``derandomize=True``, no example database) and fast (a few seconds in all).
"""

from __future__ import annotations

import gzip
import math
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bpx.datasets import DatasetError, read_idx, write_idx

FUZZ = settings(
    max_examples=150,
    deadline=2000,  # ms per example: catches a hang, tolerates a busy machine
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SLACK = 256 * 1024  # bytes a read may allocate whatever the file (read buffers, zlib state: about 80 KiB)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "file"


def reference(content: bytes) -> tuple[np.ndarray | None, int]:
    """An independent whole-buffer reading of ``content``: (the array it holds, or None if it is
    not exactly one valid IDX file; the size of its uncompressed content)."""
    data = content
    if content[:2] == b"\x1f\x8b":
        decompressor = zlib.decompressobj(wbits=31)
        try:
            data = decompressor.decompress(content)  # small inputs: at most 1032 times larger
        except zlib.error:
            return None, 0
        if not decompressor.eof or decompressor.unused_data:
            return None, len(data)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in TYPES or data[3] == 0:
        return None, len(data)
    header = 4 + 4 * data[3]
    if len(data) < header:
        return None, len(data)
    shape = struct.unpack(f">{data[3]}I", data[4:header])
    dtype = np.dtype(TYPES[data[2]])
    if len(data) - header != math.prod(shape) * dtype.itemsize:
        return None, len(data)
    try:
        return np.frombuffer(data, dtype, offset=header).reshape(shape), len(data)
    except ValueError:  # a shape NumPy cannot represent, e.g. (0, 2**32 - 1, 2**32 - 1)
        return None, len(data)


def check(path: Path, content: bytes) -> None:
    """read_idx(content) agrees with :func:`reference`, raises nothing but DatasetError and
    allocates at most twice what the file holds plus :data:`SLACK`."""
    path.write_bytes(content)
    expected, size = reference(content)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result = read_idx(path)
        except DatasetError as e:
            result = e
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if isinstance(result, DatasetError):
        assert expected is None, f"rejected a valid file: {result}"
        assert str(result).startswith(f"{path}: ")
    else:
        assert expected is not None, f"accepted an invalid file as {result.dtype} {result.shape}"
        assert result.dtype == expected.dtype.newbyteorder("=") and result.dtype.isnative
        assert result.shape == expected.shape and result.flags.writeable
        assert result.tobytes() == expected.astype(result.dtype).tobytes()
    assert peak <= 2 * (len(content) + size) + SLACK, f"peak {peak} for {len(content)} bytes holding {size}"


small = st.integers(0, 5)
dims = st.one_of(small, small, small, st.sampled_from([2**16, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))


@st.composite
def idx_like(draw) -> bytes:
    """A header with random fields, then a payload that is often exactly the declared size."""
    code = draw(st.one_of(st.sampled_from(sorted(TYPES)), st.sampled_from(sorted(TYPES)), st.integers(0, 255)))
    shape = draw(st.lists(dims, max_size=4))
    nbytes = math.prod(shape) * (np.dtype(TYPES[code]).itemsize if code in TYPES else 1)
    size = draw(st.one_of(st.just(min(nbytes, 400)), st.integers(0, 400)))
    header = struct.pack(f">4B{len(shape)}I", 0, 0, code, len(shape), *shape)
    return header + draw(st.binary(min_size=size, max_size=size))


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes(scratch, content):
    check(scratch, content)


@FUZZ
@given(st.binary(max_size=600))
def test_any_gzip_compressed_bytes(scratch, content):
    check(scratch, gzip.compress(content, mtime=0))


@FUZZ
@given(idx_like(), st.booleans())
def test_any_header(scratch, content, compress):
    check(scratch, gzip.compress(content, mtime=0) if compress else content)


@st.composite
def valid_arrays(draw) -> np.ndarray:
    dtype = draw(st.sampled_from(sorted(TYPES.values())))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6))
    return draw(hnp.arrays(np.dtype(dtype).newbyteorder("="), shape))


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(t).newbyteorder("="): c for c, t in TYPES.items()}[array.dtype]
    big = array.astype(np.dtype(TYPES[code]))
    return struct.pack(f">4B{array.ndim}I", 0, 0, code, array.ndim, *array.shape) + big.tobytes()


@st.composite
def mutated(draw, content: bytes) -> bytes:
    """``content`` after 1 to 3 byte-level mutations."""
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set header byte", "set dimension"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "set header byte" and len(data) >= 4:
            data[draw(st.integers(0, 3))] = draw(st.integers(0, 255))
        elif op == "set dimension" and len(data) >= 8 and data[3]:
            k = draw(st.integers(0, (min(len(data), 4 + 4 * data[3]) - 8) // 4))
            data[4 + 4 * k : 8 + 4 * k] = struct.pack(">I", draw(dims))
    return bytes(data)


@FUZZ
@given(st.data(), valid_arrays(), st.sampled_from(["raw", "mutate then compress", "compress then mutate"]))
def test_mutated_valid_files(scratch, data, array, mode):
    content = idx_bytes(array)
    if mode == "raw":
        content = data.draw(mutated(content))
    elif mode == "mutate then compress":
        content = gzip.compress(data.draw(mutated(content)), mtime=0)
    else:
        content = data.draw(mutated(gzip.compress(content, mtime=0)))
    check(scratch, content)


@settings(FUZZ, max_examples=80)
@given(valid_arrays(), st.booleans(), st.sampled_from([b"\0", b"\0" * 4, b"\x1f", b"junk", gzip.compress(b"\0")]))
def test_trailing_data(scratch, array, compress, tail):
    """A valid file followed by anything (zero padding, garbage, a second gzip member) is refused."""
    content = idx_bytes(array)
    check(scratch, (gzip.compress(content, mtime=0) if compress else content) + tail)
    with pytest.raises(DatasetError, match="trailing"):
        read_idx(scratch)


@settings(FUZZ, max_examples=60)  # write_idx fsyncs every file: slower
@given(valid_arrays(), st.sampled_from(["=", ">", "<"]), st.booleans())
def test_round_trip(scratch, array, byte_order, compress):
    array = array.astype(array.dtype.newbyteorder(byte_order))
    write_idx(scratch, array, compress=compress)
    result = read_idx(scratch)
    assert result.dtype == array.dtype.newbyteorder("=") and result.dtype.isnative
    assert result.shape == array.shape and result.flags.writeable
    assert result.tobytes() == array.astype(result.dtype).tobytes()
    assert (scratch.read_bytes()[:2] == b"\x1f\x8b") == compress
