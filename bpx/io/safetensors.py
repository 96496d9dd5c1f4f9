"""Networks in the `safetensors <https://github.com/huggingface/safetensors>`_ format.

File layout (the format's own): 8 bytes, the little-endian length ``N`` of a UTF-8 JSON header;
the header; then the tensors' bytes, back to back. The header maps each tensor name to
``{"dtype": "F32", "shape": [784, 256], "data_offsets": [begin, end]}`` (offsets into the data
part) and may hold ``"__metadata__"``, an object of strings. bpx writes no other package's code:
its files load with ``safetensors.numpy.load_file`` (and ``safetensors.torch``), and it reads
files that other tools wrote.

Tensor names are those of :meth:`bpx.nn.Network.state_dict`: ``layers.<i>.<name>`` for each
parameter and buffer (``layers.0.weight``, ``layers.0.bias``, ``layers.3.running_mean``; ``i``
is the layer's position, a shared layer under its first one; ``Dense`` weights are
``(in_features, out_features)``, the transpose of a PyTorch ``Linear``'s), and
``optim/<param>/<key>`` for optimizer state (``optim/layers.0.weight/m``). bpx writes float32
or float64 little-endian (``F32``/``F64``); it reads ``F16``, ``BF16``, ``F32`` and ``F64``.

Metadata (strings; JSON where noted), as the ``.npz`` header of :mod:`bpx.io.checkpoint`::

    format: "bpx-checkpoint"   version: "2"   bpx_version: "0.2.0"   dtype: "float32"
    config: JSON of Network.config()          backend: JSON {"name", "device"} (informational)
    seed: "0"   step_count: "4690"   epochs_trained: "10"   loss: JSON {"name", "config"} or "null"
    metrics: JSON list or "null"              optimizer: JSON, as in the .npz header, or "null"

A file without bpx metadata (written by another tool) loads only when the architecture is given:
``load_safetensors(path, architecture=net.config())`` (or a network); its tensors must then have
exactly the names above, the shapes the architecture needs and a float dtype. Without one,
:class:`CheckpointError` says so.

Reading trusts nothing: the header length must fit the file and :data:`MAX_HEADER_BYTES`; the
header must be a JSON object with unique keys, finite numbers and at most :data:`bpx.io.untrusted.MAX_JSON_DEPTH`
levels; every entry needs an allowed dtype, a shape of at most 32 non-negative dimensions whose
byte size equals its offsets, and the offsets must tile the data part exactly (no gaps, no
overlaps, nothing past the end); the architecture's parameters must fit the file before the
network is built. Only then are bytes read (each tensor at most the file's size). Every problem
is a :class:`bpx.CheckpointError` naming the file. Writing is atomic (:mod:`bpx.host.files`).
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..backend import FLOAT_DTYPES, Backend, get_backend
from ..errors import BpxTypeError, CheckpointWriteError
from ..host.files import atomic_write, check_writable
from ..nn.network import Network
from ..optim.optimizers import Optimizer
from ..version import __version__
from .contents import (
    FIELD_CHECKS,
    FORMAT,
    OPTIM,
    VERSION,
    build_network,
    collect,
    declared_values,
    is_count,
    is_int,
    json_text,
    load_arrays,
    restore_optimizer,
    short,
)
from .untrusted import UntrustedFile, existing_file, strict_json

SUFFIX = ".safetensors"
METADATA = "__metadata__"
#: The longest JSON header read (the safetensors library allows 100 MB; bpx's headers are small).
MAX_HEADER_BYTES = 16 << 20
MAX_DIMS = 32
#: safetensors dtype → little-endian NumPy dtype read (BF16 is widened by bpx itself).
DTYPES = {"F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}
ITEMSIZE = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_WRITE_DTYPES = {"float32": "F32", "float64": "F64"}
#: The metadata's fields that hold JSON (the others are plain strings).
_JSON_FIELDS = ("backend", "config", "loss", "metrics", "optimizer")
WHERE = "the metadata"

N = TypeVar("N", bound=Network)


# ---------------------------------------------------------------------- save
def safetensors_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.safetensors`` appended when it has another suffix; refuses folders."""
    text = os.fspath(path)
    name = Path(text).name
    if not name or name == ".." or text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise CheckpointWriteError(f"cannot write checkpoint {text!r}: it names a folder, not a file")
    p = Path(text)
    return p if p.suffix == SUFFIX else p.with_name(name + SUFFIX)


def save_safetensors(net: Network, path: str | os.PathLike[str], optimizer: Optimizer | None = None) -> Path:
    """Write ``net`` (and ``optimizer``) to ``path`` in the safetensors format; returns the path
    written (``.safetensors`` appended when missing). Atomic, like :func:`bpx.io.save_checkpoint`,
    and with the same errors: :class:`CheckpointWriteError`, :class:`NonFiniteError`,
    :class:`StateError`."""
    path = check_writable(safetensors_path(path), "checkpoint")
    net.backend.require_data(f"saving checkpoint {str(path)!r}")
    what = f"cannot save checkpoint {str(path)!r}"
    tensors, description = collect(net, optimizer, what)
    metadata = {key: json_text(value, what) if key in _JSON_FIELDS else str(value)
                for key, value in description.items()}
    header, order = _header_bytes(tensors, metadata)
    with atomic_write(path, "checkpoint") as f:
        f.write(header)
        for name in order:
            f.write(tensors[name].tobytes())
    return path


def _header_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> tuple[bytes, list[str]]:
    """The length prefix and JSON header (padded with spaces to a multiple of 8 bytes, as the
    safetensors library writes it), and the order of the tensors' bytes."""
    order = sorted(tensors)
    header: dict[str, Any] = {METADATA: metadata}
    offset = 0
    for name in order:
        array = tensors[name]
        header[name] = {"dtype": _WRITE_DTYPES[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 8)
    return struct.pack("<Q", len(text)) + text, order


# ---------------------------------------------------------------------- read
class SafetensorsReader(UntrustedFile):
    """A checked safetensors file: :attr:`metadata`, :attr:`entries` (name → ``(dtype, shape,
    begin, end)``) and :meth:`array`. Use as a context manager; every problem is a
    :class:`CheckpointError` naming the file."""

    def _read(self, n: int) -> bytes:
        try:
            data = self._file.read(n)
        except OSError as err:
            raise self.error(f"cannot read it ({err.strerror or err})") from None
        if len(data) != n:
            raise self.error(f"truncated: {len(data)} of {n} bytes")
        return data

    def _parse(self) -> None:
        if self.size < 8:
            raise self.error(f"not a safetensors file: {self.size} bytes, fewer than the 8-byte header length")
        (length,) = struct.unpack("<Q", self._read(8))
        if length > MAX_HEADER_BYTES:
            raise self.error(f"it declares a {length}-byte header (at most {MAX_HEADER_BYTES} are read)")
        if 8 + length > self.size:
            raise self.error(f"it declares a {length}-byte header but the file has {self.size - 8} bytes after "
                             "the length")
        raw = self._read(length)
        try:
            header = strict_json(raw.decode("utf-8"))
        except (ValueError, RecursionError) as err:
            raise self.error(f"the header is not valid UTF-8 JSON ({type(err).__name__}: {err})") from None
        if not isinstance(header, dict):
            raise self.error(f"the header is not a JSON object but {short(header)}")
        self.data_start = 8 + length
        self.data_size = self.size - self.data_start
        metadata = header.pop(METADATA, {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise self.error(f"its {METADATA!r} is {short(metadata)}, not an object of strings")
        self.metadata: dict[str, str] = metadata
        self.entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        for name, entry in header.items():
            self.entries[name] = self._entry(name, entry)
        spans = sorted((begin, end, name) for name, (_, _, begin, end) in self.entries.items())
        position = 0
        for begin, end, name in spans:
            if begin != position:
                problem = "overlaps another tensor" if begin < position else f"leaves a gap before it (at {position})"
                raise self.error(f"tensor {name!r} starts at byte {begin} of the data and {problem}")
            position = end
        if position != self.data_size:
            raise self.error(f"the tensors cover {position} bytes of data but the file holds {self.data_size}")
        self.names = list(self.entries)

    def _entry(self, name: str, entry: Any) -> tuple[str, tuple[int, ...], int, int]:
        if not name:
            raise self.error("a tensor has an empty name")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise self.error(f"tensor {name[:80]!r} is described by {short(entry)}, not "
                             "{'dtype', 'shape', 'data_offsets'}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise self.error(f"tensor {name[:80]!r} has dtype {short(dtype)}; bpx reads {', '.join(DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(is_int(d) and 0 <= d < 2**63 for d in shape)):
            raise self.error(f"tensor {name[:80]!r} has shape {short(shape)}, not a list of at most {MAX_DIMS} "
                             "non-negative ints")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= self.data_size):
            raise self.error(f"tensor {name[:80]!r} has data_offsets {short(offsets)}, not [begin, end] within "
                             f"the {self.data_size} bytes of data")
        nbytes = math.prod(shape) * ITEMSIZE[dtype]
        if nbytes != offsets[1] - offsets[0]:
            raise self.error(f"tensor {name[:80]!r} of shape {shape} ({dtype}) needs {nbytes} bytes but its offsets "
                             f"span {offsets[1] - offsets[0]}")
        return dtype, tuple(shape), offsets[0], offsets[1]

    def read(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name``, checked to have ``shape``, as a native float array."""
        if name in self.entries and self.entries[name][1] != tuple(shape):
            raise self.error(f"tensor {name!r} has shape {self.entries[name][1]} but the architecture needs "
                             f"{tuple(shape)}")
        return self.array(name)

    def array(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a native float array (F16/BF16 widened to float32)."""
        if name not in self.entries:
            raise self.error(f"tensor {name!r} is missing")
        dtype, shape, begin, end = self.entries[name]
        try:
            self._file.seek(self.data_start + begin)
        except OSError as err:
            raise self.error(f"cannot read it ({err.strerror or err})") from None
        raw = np.frombuffer(self._read(end - begin), dtype=np.dtype(DTYPES[dtype]))
        if dtype == "BF16":
            raw = (raw.astype(np.uint32) << 16).view("<f4")
        array = raw.astype(raw.dtype.newbyteorder("="))  # a writable copy in native order
        if dtype == "F16":
            array = array.astype(np.float32)
        return array.reshape(shape)


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` looks like safetensors (an 8-byte length, then ``{``)."""
    try:
        with open(path, "rb") as f:
            start = f.read(9)
    except OSError:
        return False
    return len(start) == 9 and start[8:9] == b"{" and not start.startswith(b"PK")


# ---------------------------------------------------------------------- load
def load_safetensors(path: str | os.PathLike[str], backend: str | Backend | None = None, device: Any = None,
                     dtype: Any = None, *, with_optimizer: bool = False, network_class: type[N] = Network,  # type: ignore[assignment]
                     architecture: Network | dict[str, Any] | None = None) -> N | tuple[N, Optimizer]:
    """Rebuild the network saved at ``path`` on ``backend``/``device`` as ``network_class``.

    ``dtype`` defaults to the saved one (for a file without bpx metadata: float64 when any
    tensor is F64, else float32). ``architecture`` (a network or its :meth:`~Network.config`) is
    needed for files without bpx metadata and overrides the file's. ``with_optimizer=True``
    returns ``(net, optimizer)`` (bpx files saved with one). Raises :class:`CheckpointError` for
    an invalid file, ``FileNotFoundError`` for none.
    """
    path = existing_file(Path(path), SUFFIX)
    with SafetensorsReader(path) as st:
        meta = _metadata(st)
        if architecture is not None:
            config = architecture.config() if isinstance(architecture, Network) else architecture
            if not isinstance(config, dict):
                raise BpxTypeError(f"architecture must be a bpx network or its config(), got {short(config)}")
        elif meta is not None:
            config = meta["config"]
        else:
            raise st.error("it has no bpx metadata (another tool wrote it), so its architecture is unknown; pass "
                           "architecture=net.config() (or a network) with tensors named as net.state_dict()")
        saved_dtype = meta["dtype"] if meta is not None else (
            "float64" if any(e[0] == "F64" for e in st.entries.values()) else "float32")
        declared = declared_values(st, config, WHERE)
        stored = sum(math.prod(shape) for name, (_, shape, _, _) in st.entries.items() if not name.startswith(OPTIM))
        if declared > stored:
            raise st.error(f"the architecture needs {declared} parameter and buffer values but the file's tensors "
                           f"hold {stored}")
        if dtype is None and not isinstance(backend, Backend):
            dtype = saved_dtype
        target = get_backend(backend, device, dtype)
        target.require_data(f"loading checkpoint {str(path)!r}")
        net = build_network(st, config, meta, target, network_class, WHERE)
        names = set(st.names)
        optimizer_spec = meta.get("optimizer") if meta else None
        load_arrays(st, st.read, names, net, optimizer_spec is not None, WHERE)
        if not with_optimizer:
            return net
        return net, restore_optimizer(st, st.read, names, optimizer_spec, net, WHERE)


def _metadata(st: SafetensorsReader) -> dict[str, Any] | None:
    """bpx's metadata, parsed and checked; ``None`` for a file without it."""
    raw = st.metadata
    if raw.get("format") != FORMAT:
        return None
    parsed: dict[str, Any] = {}
    version = raw.get("version", "")
    if not version.isdigit() or not 1 <= int(version[:6]) <= VERSION:
        raise st.error(f"unsupported bpx format version {short(version)} (this bpx, {__version__}, reads 1 to "
                       f"{VERSION})")
    if raw.get("dtype") not in FLOAT_DTYPES:
        raise st.error(f"the metadata's dtype {short(raw.get('dtype'))} is not one of {FLOAT_DTYPES}")
    parsed["dtype"] = raw["dtype"]
    text = raw.get("config", "null")
    try:
        parsed["config"] = strict_json(text)
    except (ValueError, RecursionError) as err:
        raise st.error(f"the metadata's 'config' is not valid JSON ({type(err).__name__}: {err})") from None
    if not isinstance(parsed["config"], dict):
        raise st.error(f"the metadata's 'config' is {short(parsed['config'])}, expected an object")
    for key, check, expected in FIELD_CHECKS:
        text = raw.get(key, "0" if check is is_count else "null")
        if check is is_count:
            if not text.isdigit() or len(text) > 19:
                raise st.error(f"the metadata's {key!r} is {short(text)}, expected {expected}")
            value: Any = int(text)
        else:
            try:
                value = strict_json(text)
            except (ValueError, RecursionError) as err:
                raise st.error(f"the metadata's {key!r} is not valid JSON ({type(err).__name__}: {err})") from None
        if not check(value):
            raise st.error(f"the metadata's {key!r} is {short(value)}, expected {expected}")
        parsed[key] = value
    return parsed
