"""Byte-level fuzzing of checkpoint loading: for any mutation of a valid checkpoint, ``bpx.load``
either returns a network whose weights (and optimizer state) are finite and equal to what the
file's arrays hold, or raises CheckpointError naming the file; never another exception, never
MemoryError, and with traced memory below 64 MiB + 1100 × the file size.

Mutations: bit flips, truncations, insertions and deletions of bytes, overwrites of zip header
fields (local headers, central directory, end record), edits of the JSON header (its values, its
keys, its text), edits of ``.npy`` headers, reordered, dropped, duplicated, renamed or recompressed
members, and array values (NaN, inf, huge, other dtypes and shapes).

Deterministic (``derandomize=True``, no example database) and fast (a few seconds in all). For a
longer campaign, set ``BPX_FUZZ_EXAMPLES`` (examples per test), e.g.
``BPX_FUZZ_EXAMPLES=3000 pytest tests/io/test_checkpoint_fuzz.py --hypothesis-show-statistics``; with
``BPX_FUZZ_RANDOM=1`` each run draws new examples.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import tracemalloc
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bpx
from bpx import CheckpointError, load

EXAMPLES = int(os.environ.get("BPX_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 40, deadline=None, derandomize="BPX_FUZZ_RANDOM" not in os.environ,
                database=None, suppress_health_check=list(HealthCheck))
MEMORY_SLACK = 64 << 20
DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Seed:
    """A valid checkpoint: its bytes and its members (name, raw ``.npy`` bytes) in file order."""

    name: str
    content: bytes
    members: tuple[tuple[str, bytes], ...]


def _seed(name: str, path: Path) -> Seed:
    with zipfile.ZipFile(path) as z:
        members = tuple((info.filename, z.read(info)) for info in z.infolist())
    return Seed(name, path.read_bytes(), members)


def _make_seeds(folder: Path) -> list[Seed]:
    x, t = np.linspace(-1, 1, 12).reshape(4, 3), np.linspace(0, 1, 8).reshape(4, 2)
    small = bpx.Sequential(bpx.Dense(3, 4), bpx.Tanh(), bpx.Dense(4, 2, train_bias=False), dtype="float32", seed=1)
    momentum = bpx.SGD(lr=0.1, momentum=0.9)
    small.train_step(x, t, "hse", momentum)
    rich = bpx.Sequential(bpx.Dense(3, 4), bpx.BatchNorm(4), bpx.Dropout(0.2), bpx.ReLU(), bpx.Dense(4, 2),
                          dtype="float64", seed=2)
    adam = bpx.Adam(lr=0.01)
    rich.train_step(x, t, "mse", adam)
    shared = bpx.Dense(2, 2)
    tied = bpx.Sequential(shared, bpx.Tanh(), shared, dtype="float32", seed=3)
    deflated = folder / "deflated.npz"
    small.save(deflated, momentum)
    np.savez_compressed(deflated, **dict(np.load(deflated)))
    return [_seed("small", small.save(folder / "small.npz", momentum)),
            _seed("rich", rich.save(folder / "rich.npz", adam)),
            _seed("tied", tied.save(folder / "tied.npz")),
            _seed("deflated", deflated),
            _seed("version-1", DATA / "bpx-0.1.0-v1.npz")]


SEED_NAMES = ("small", "rich", "tied", "deflated", "version-1")
seeds = st.sampled_from(range(len(SEED_NAMES)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Seed]:
    return _make_seeds(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "mutant.npz"


# ---------------------------------------------------------------------- the property
def check(path: Path, with_optimizer: bool, note=event) -> None:
    """Load ``path``: a CheckpointError naming it, or exactly what its arrays hold; bounded memory."""
    size = path.stat().st_size
    tracemalloc.start()
    try:
        try:
            result = load(path, with_optimizer=with_optimizer)
        except CheckpointError as err:
            assert str(err).startswith(f"cannot load checkpoint {str(path)!r}: "), err
            result = None
            note(f"refused: {_reason(str(err))}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_SLACK + 1100 * size, f"{peak} bytes traced for a file of {size}"
    if result is None:
        return
    note("loaded")
    net, optimizer = result if with_optimizer else (result, None)
    with np.load(path, allow_pickle=False) as npz:  # an independent reading of what the file declares
        used = [n for n in npz.files if with_optimizer or not n.startswith("optim/")]  # bpx read these only
        declared = {name: npz[name] for name in used}
    dtype = np.dtype(json.loads(declared["header"].tobytes())["dtype"])
    state = net.state_dict()
    assert set(state) == {n for n in declared if n != "header" and not n.startswith("optim/")}
    for name, value in state.items():
        assert value.dtype == dtype and np.all(np.isfinite(value)), name
        np.testing.assert_array_equal(value, declared[name].astype(dtype), err_msg=name)
    if optimizer is not None:
        names = {p: name for name, p in net.named_parameters().items()}
        for p, values in optimizer.parameter_state(net.store).items():
            for key, value in values.items():
                stored = declared.get(f"optim/{names[p]}/{key}", np.zeros(p.shape))
                np.testing.assert_array_equal(bpx.to_host(value), stored.astype(dtype), err_msg=f"{names[p]}/{key}")


def _reason(message: str) -> str:
    """A short label of a refusal (for --hypothesis-show-statistics)."""
    problem = message.split("': ", 1)[-1]
    problem = re.sub(r"'[^']*'|\d+|\[[^\]]*\]|\([^)]*\)", "_", problem)
    return problem[:60]


def write_members(path: Path, members, compression: int = zipfile.ZIP_STORED) -> None:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
        warnings.simplefilter("ignore")  # duplicate names
        for item in members:
            name, data = item[:2]
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, item[2] if len(item) > 2 else compression)


# ---------------------------------------------------------------------- raw bytes
@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_bit_flips(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    content = bytearray(seed.content)
    for position in data.draw(st.lists(st.integers(0, len(content) - 1), min_size=1, max_size=4)):
        content[position] ^= 1 << data.draw(st.integers(0, 7))
    scratch.write_bytes(bytes(content))
    check(scratch, with_optimizer)


@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_truncations_insertions_and_deletions(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    content = seed.content
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(content)))
        kind = data.draw(st.sampled_from(["truncate", "insert", "delete", "repeat"]))
        if kind == "truncate":
            content = content[:at]
        elif kind == "insert":
            content = content[:at] + data.draw(st.binary(min_size=1, max_size=64)) + content[at:]
        elif kind == "delete":
            content = content[:at] + content[at + data.draw(st.integers(1, 64)):]
        else:
            content = content[:at] + content[at:at + 64] * data.draw(st.integers(2, 50)) + content[at:]
    scratch.write_bytes(content)
    check(scratch, with_optimizer)


#: (offset, struct format) of every field of a local header, a central-directory entry and the end record.
LOCAL_FIELDS = [(4, "<H"), (6, "<H"), (8, "<H"), (10, "<H"), (12, "<H"), (14, "<I"), (18, "<I"), (22, "<I"),
                (26, "<H"), (28, "<H")]
CENTRAL_FIELDS = [(4, "<H"), (6, "<H"), (8, "<H"), (10, "<H"), (12, "<H"), (14, "<H"), (16, "<I"), (20, "<I"),
                  (24, "<I"), (28, "<H"), (30, "<H"), (32, "<H"), (34, "<H"), (36, "<H"), (38, "<I"), (42, "<I")]
END_FIELDS = [(4, "<H"), (6, "<H"), (8, "<H"), (10, "<H"), (12, "<I"), (16, "<I"), (20, "<H")]


def record_offsets(content: bytes, signature: bytes) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(signature), content)]


@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_zip_header_field_overwrites(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    content = bytearray(seed.content)
    for _ in range(data.draw(st.integers(1, 3))):
        signature, fields = data.draw(st.sampled_from([(b"PK\x03\x04", LOCAL_FIELDS), (b"PK\x01\x02", CENTRAL_FIELDS),
                                                       (b"PK\x05\x06", END_FIELDS)]))
        start = data.draw(st.sampled_from(record_offsets(bytes(content), signature) or [0]))
        offset, fmt = data.draw(st.sampled_from(fields))
        top = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
        old = struct.unpack_from(fmt, content, start + offset)[0] if start + offset + 4 <= len(content) else 0
        value = data.draw(st.sampled_from([0, 1, top, top - 1, old + 1, max(old - 1, 0), old ^ 0x1, old ^ 0x8,
                                           old ^ 0x800, 8, 12, 14, 99, 0x3F]) | st.integers(0, top))
        if start + offset + struct.calcsize(fmt) <= len(content):
            struct.pack_into(fmt, content, start + offset, value & top)
    scratch.write_bytes(bytes(content))
    check(scratch, with_optimizer)


# ---------------------------------------------------------------------- the JSON header
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from([0, -1, 1, 2**31, 2**63, 10**12, "", "float16", "float64", "Dense",
                                              "Identity", "same_as", "velocity", "m", "SGD", [], {}, [1], [0, 0]]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def json_paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value, iteratively."""
    paths, stack = [], [(value, prefix)]
    while stack:
        item, path = stack.pop()
        paths.append(path)
        if isinstance(item, dict):
            stack.extend((v, (*path, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))
    return sorted(paths, key=repr)


def mutate_json(header, data):
    path = data.draw(st.sampled_from(json_paths(header)))
    if not path:
        return data.draw(json_values)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    kind = data.draw(st.sampled_from(["replace", "delete", "insert", "duplicate", "number"]))
    if kind == "replace":
        parent[key] = data.draw(json_values)
    elif kind == "delete":
        del parent[key]
    elif kind == "insert" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12) | st.sampled_from(["weight", "bias", "same_as", "type", "seed",
                                                                 "buffers", "input_shape"]))] = data.draw(json_values)
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, parent[key])
    elif isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = data.draw(st.sampled_from([parent[key] + 1, parent[key] - 1, -parent[key], parent[key] * 1000,
                                                 parent[key] * 10**9, 0, float(parent[key]) + 0.5]))
    return header


def replace_member(seed: Seed, name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(n, data if n == name else d) for n, d in seed.members]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_header_json_mutations(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    text = np.lib.format.read_array(io.BytesIO(dict(seed.members)["header.npy"])).tobytes()
    if data.draw(st.booleans()):
        header = json.loads(text)
        for _ in range(data.draw(st.integers(1, 3))):
            header = mutate_json(header, data)
        text = json.dumps(header).encode()
    else:  # the text itself: bytes flipped, cut, inserted
        text = bytearray(text)
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, len(text) - 1))
            op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
            if op == "flip":
                text[at] = data.draw(st.sampled_from(b'{}[]",:0-e9 \\\xff\x00')) if data.draw(st.booleans()) \
                    else text[at] ^ 1 << data.draw(st.integers(0, 7))
            elif op == "cut":
                del text[at:at + data.draw(st.integers(1, 20))]
            else:
                text[at:at] = data.draw(st.binary(max_size=8) | st.sampled_from([b"[" * 50, b"1e999", b"NaN", b"-0"]))
        text = bytes(text)
    write_members(scratch, replace_member(seed, "header.npy", npy_bytes(np.frombuffer(text, np.uint8))))
    check(scratch, with_optimizer)


# ---------------------------------------------------------------------- .npy headers and array values
DESCRS = ["<f4", ">f4", "<f8", ">f8", "|u1", "<i4", "|O", "<f2", "<c8", "<U3", "|b1", "<f16"]


@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_npy_header_mutations(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    name, member = data.draw(st.sampled_from(seed.members))
    major, start = member[6], 10 if member[6] == 1 else 12
    length = struct.unpack("<H", member[8:10])[0] if major == 1 else struct.unpack("<I", member[8:12])[0]
    text, body = member[start:start + length].decode("latin1"), member[start + length:]
    kind = data.draw(st.sampled_from(["descr", "shape", "fortran", "char", "length", "version", "body"]))
    prefix = member[:start]
    if kind == "descr":
        text = re.sub(r"'descr': '[^']*'", f"'descr': '{data.draw(st.sampled_from(DESCRS))}'", text)
    elif kind == "shape":
        dims = data.draw(st.lists(st.integers(0, 40) | st.sampled_from([10**12, 2**63, 10**19, 17_000_000]),
                                  max_size=4))
        shape = repr(tuple(dims)) if data.draw(st.booleans()) else "(" + ", ".join(map(str, dims)) + ")"
        text = re.sub(r"'shape': \([^)]*\)", f"'shape': {shape}", text)
    elif kind == "fortran":
        text = text.replace("False", "True") if "False" in text else text.replace("True", "False")
    elif kind == "char":
        at = data.draw(st.integers(0, len(text) - 1))
        char = data.draw(st.sampled_from([*"(){}[],:' 0123456789-eE+\n\t", "²", "\x00"]))
        text = text[:at] + char + text[at + 1:]
    elif kind == "length":
        length = data.draw(st.integers(0, 70000))
        prefix = prefix[:8] + (struct.pack("<H", min(length, 0xFFFF)) if major == 1 else struct.pack("<I", length))
    elif kind == "version":
        prefix = prefix[:6] + bytes([data.draw(st.integers(0, 255)), data.draw(st.integers(0, 255))]) + prefix[8:]
    else:
        body = body[:data.draw(st.integers(0, len(body)))] + data.draw(st.binary(max_size=16))
    if kind != "length":
        raw = text.encode("latin1", "replace")
        prefix = prefix[:8] + (struct.pack("<H", len(raw)) if major == 1 else struct.pack("<I", len(raw)))
        text = raw.decode("latin1")
    write_members(scratch, replace_member(seed, name, prefix + text.encode("latin1", "replace") + body))
    check(scratch, with_optimizer)


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0]
FLOATS = {4: st.floats(width=32) | st.sampled_from([*SPECIAL, 3.4e38, 1e-45]),
          8: st.floats() | st.sampled_from([*SPECIAL, 1e300, -3.5e38, 1e-310])}


@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_array_value_mutations(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    name, member = data.draw(st.sampled_from([m for m in seed.members if m[0] != "header.npy"]))
    original = np.lib.format.read_array(io.BytesIO(member))
    dtype = data.draw(st.sampled_from(["<f4", ">f4", "<f8", ">f8", "<i4", "|u1"]))
    shape = data.draw(st.just(original.shape) | hnp.array_shapes(min_dims=0, max_dims=3, max_side=7))
    elements = FLOATS[int(dtype[2])] if dtype[1] == "f" else None
    array = data.draw(hnp.arrays(dtype, shape, elements=elements))
    write_members(scratch, replace_member(seed, name, npy_bytes(array)))
    check(scratch, with_optimizer)


# ---------------------------------------------------------------------- members
@FUZZ
@given(seed=seeds, data=st.data(), with_optimizer=st.booleans())
def test_member_reordering_dropping_duplicating_renaming(scratch, corpus, seed, data, with_optimizer):
    seed = corpus[seed]
    members = [list(m) for m in seed.members]
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["reorder", "drop", "duplicate", "rename", "add", "compress"]))
        index = data.draw(st.integers(0, len(members) - 1)) if members else 0
        if kind == "reorder":
            members = data.draw(st.permutations(members))
        elif kind == "drop" and members:
            del members[index]
        elif kind == "duplicate" and members:
            members.insert(data.draw(st.integers(0, len(members))), list(members[index]))
        elif kind == "rename" and members:
            new = data.draw(st.sampled_from([m[0] for m in seed.members]) | st.sampled_from(
                ["header", "HEADER.npy", "layers.0.weight.npy\x00", "optim/x/m.npy", "a/../header.npy", ".npy"]))
            members[index][0] = new
        elif kind == "add":
            members.append([data.draw(st.sampled_from(["optim/layers.0.weight/m.npy", "layers.9.weight.npy", "x.npy"])),
                            npy_bytes(np.zeros(data.draw(st.integers(0, 5)), "<f4"))])
        elif members:
            members[index].append(zipfile.ZIP_DEFLATED)
    write_members(scratch, [tuple(m) for m in members])
    check(scratch, with_optimizer)


def test_every_seed_loads_exactly(scratch, corpus):
    """The property's positive half: unmutated seeds load, and equal their arrays."""
    assert [seed.name for seed in corpus] == list(SEED_NAMES)
    for seed in corpus:
        scratch.write_bytes(seed.content)
        check(scratch, seed.name in ("small", "rich", "deflated", "version-1"), note=print)
