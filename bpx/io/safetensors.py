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
from typing import Any, BinaryIO, TypeVar

import numpy as np

from ..backend import FLOAT_DTYPES, Backend, get_backend
from ..checks import check_float
from ..errors import BpxError, BpxTypeError, CheckpointError, CheckpointWriteError, NonFiniteError, StateError
from ..host.arrays import check_representable, element_count, is_finite_host, to_host
from ..host.files import atomic_write, check_writable
from ..nn.layer import layer_from_config
from ..nn.losses import LOSSES, Loss
from ..nn.network import Network
from ..optim.optimizers import OPTIMIZERS, Optimizer
from ..version import __version__
from .untrusted import existing_file, strict_json

FORMAT = "bpx-checkpoint"
VERSION = 2
SUFFIX = ".safetensors"
OPTIM = "optim/"
METADATA = "__metadata__"
#: The longest JSON header read (the safetensors library allows 100 MB; bpx's headers are small).
MAX_HEADER_BYTES = 16 << 20
MAX_DIMS = 32
#: safetensors dtype → little-endian NumPy dtype read (BF16 is widened by bpx itself).
DTYPES = {"F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}
ITEMSIZE = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_WRITE_DTYPES = {"float32": "F32", "float64": "F64"}
_CONFIG_ERRORS = (BpxError, TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError)
_OPTIMIZER_CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}

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
    tensors, metadata = _contents(net, optimizer, what)
    header, order = _header_bytes(tensors, metadata)
    with atomic_write(path, "checkpoint") as f:
        f.write(header)
        for name in order:
            f.write(tensors[name].tobytes())
    return path


def _contents(net: Network, optimizer: Optimizer | None, what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    net.store.check_finite(what)
    state = net.state_dict()
    for name in net.named_buffers():
        if not is_finite_host(state[name]):
            raise NonFiniteError(f"{what}: buffer {name!r} holds NaN or inf")
    dtype = net.backend.master_dtype_name
    tensors = {name: _little(value, dtype) for name, value in state.items()}
    loss = net.loss
    own_loss = loss is not None and LOSSES.get(loss.name) is type(loss)
    meta: dict[str, Any] = {
        "format": FORMAT, "version": str(VERSION), "bpx_version": __version__, "dtype": dtype,
        "backend": _json({"name": net.backend.name, "device": str(net.backend.device)}, what),
        "config": _json(net.config(), what), "seed": str(net.seed), "step_count": str(net.step_count),
        "epochs_trained": str(net.epochs_trained),
        "loss": _json({"name": loss.name, "config": loss.config()} if own_loss else None, what),  # type: ignore[union-attr]
        "metrics": _json(net.metrics, what), "optimizer": "null",
    }
    if optimizer is not None:
        meta["optimizer"] = _json(_optimizer_part(net, optimizer, tensors, dtype, what), what)
    return tensors, meta


def _little(host: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(host, dtype=np.dtype(dtype).newbyteorder("<"))


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise BpxTypeError(f"{what}: its configuration is not JSON data ({err})") from None


def _optimizer_part(net: Network, optimizer: Optimizer, tensors: dict[str, np.ndarray], dtype: str,
                    what: str) -> dict[str, Any]:
    cls = type(optimizer)
    if _OPTIMIZER_CLASSES.get(cls.__name__) is not cls:
        raise StateError(f"{what}: only bpx's own optimizers ({', '.join(_OPTIMIZER_CLASSES)}) can be saved, "
                         f"not {optimizer!r}")
    if optimizer.state and not optimizer.is_bound_to(net.store):
        raise StateError(f"{what}: the optimizer holds the state of another network")
    names = {p: name for name, p in net.named_parameters().items()}
    listing: dict[str, list[str]] = {}
    for p, values in optimizer.parameter_state(net.store).items():
        listing[names[p]] = list(values)
        for key, value in values.items():
            host = to_host(value)
            if not is_finite_host(host):
                raise NonFiniteError(f"{what}: the optimizer's {key!r} of parameter {names[p]!r} holds NaN or inf")
            tensors[f"{OPTIM}{names[p]}/{key}"] = _little(host, dtype)
    return {"class": cls.__name__, "hyperparameters": optimizer.hyperparameters(),
            "base_lr": optimizer.base_lr, "iterations": optimizer.iterations, "state": listing}


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
class SafetensorsReader:
    """A checked safetensors file: :attr:`metadata`, :attr:`entries` (name → ``(dtype, shape,
    begin, end)``) and :meth:`array`. Use as a context manager; every problem is a
    :class:`CheckpointError` naming the file."""

    def __init__(self, path: str | os.PathLike[str], what: str = "checkpoint") -> None:
        self.path, self.what = Path(path), what
        try:
            self._file: BinaryIO = open(self.path, "rb")  # closed by close()
        except FileNotFoundError:
            raise
        except OSError as err:
            raise self.error(f"cannot read it ({err.strerror or err})") from None
        try:
            self._parse()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"cannot load {self.what} {str(self.path)!r}: {problem}")

    def _read(self, n: int) -> bytes:
        try:
            data = self._file.read(n)
        except OSError as err:
            raise self.error(f"cannot read it ({err.strerror or err})") from None
        if len(data) != n:
            raise self.error(f"truncated: {len(data)} of {n} bytes")
        return data

    def _parse(self) -> None:
        try:
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as err:
            raise self.error(f"cannot read it ({err.strerror or err})") from None
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
            raise self.error(f"the header is not a JSON object but {_short(header)}")
        self.data_start = 8 + length
        self.data_size = self.size - self.data_start
        metadata = header.pop(METADATA, {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise self.error(f"its {METADATA!r} is {_short(metadata)}, not an object of strings")
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
            raise self.error(f"tensor {name[:80]!r} is described by {_short(entry)}, not "
                             "{'dtype', 'shape', 'data_offsets'}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise self.error(f"tensor {name[:80]!r} has dtype {_short(dtype)}; bpx reads {', '.join(DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(_is_int(d) and 0 <= d < 2**63 for d in shape)):
            raise self.error(f"tensor {name[:80]!r} has shape {_short(shape)}, not a list of at most {MAX_DIMS} "
                             "non-negative ints")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= self.data_size):
            raise self.error(f"tensor {name[:80]!r} has data_offsets {_short(offsets)}, not [begin, end] within "
                             f"the {self.data_size} bytes of data")
        nbytes = math.prod(shape) * ITEMSIZE[dtype]
        if nbytes != offsets[1] - offsets[0]:
            raise self.error(f"tensor {name[:80]!r} of shape {shape} ({dtype}) needs {nbytes} bytes but its offsets "
                             f"span {offsets[1] - offsets[0]}")
        return dtype, tuple(shape), offsets[0], offsets[1]

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
                raise BpxTypeError(f"architecture must be a bpx network or its config(), got {_short(config)}")
        elif meta is not None:
            config = meta["config"]
        else:
            raise st.error("it has no bpx metadata (another tool wrote it), so its architecture is unknown; pass "
                           "architecture=net.config() (or a network) with tensors named as net.state_dict()")
        saved_dtype = meta["dtype"] if meta is not None else (
            "float64" if any(e[0] == "F64" for e in st.entries.values()) else "float32")
        _check_budget(st, config, saved_dtype)
        if dtype is None and not isinstance(backend, Backend):
            dtype = saved_dtype
        target = get_backend(backend, device, dtype)
        target.require_data(f"loading checkpoint {str(path)!r}")
        try:
            net = network_class.from_config(config, backend=target, seed=meta["seed"] if meta else 0)
        except _CONFIG_ERRORS as err:
            raise st.error(f"invalid architecture ({type(err).__name__}: {err})") from None
        items = {name: p.shape for name, p in net.named_parameters().items()}
        items.update({name: b.shape for name, b in net.named_buffers().items()})
        weights = {n for n in st.names if not n.startswith(OPTIM)}
        _check_names(st, "tensors do not match the architecture", set(items), weights)
        optim_meta = meta.get("optimizer") if meta else None
        if optim_meta is None and any(n.startswith(OPTIM) for n in st.names):
            raise st.error("it holds optimizer state tensors but its metadata has no optimizer")
        state = {name: _values(st, name, shape, target) for name, shape in items.items()}
        try:
            net.load_state_dict(state)
        except BpxError as err:  # pragma: no cover - the tensors were checked above
            raise st.error(str(err)) from None
        if meta is not None:
            net.loss, net.metrics, net.step_count = _loss(st, meta.get("loss")), meta.get("metrics"), meta["step_count"]
            net.epochs_trained = meta["epochs_trained"]
        if not with_optimizer:
            return net
        if optim_meta is None:
            raise st.error("it holds no optimizer (saved without one); load it with with_optimizer=False")
        return net, _load_optimizer(st, optim_meta, net)


def _metadata(st: SafetensorsReader) -> dict[str, Any] | None:
    """bpx's metadata, parsed and checked; ``None`` for a file without it."""
    raw = st.metadata
    if raw.get("format") != FORMAT:
        return None
    parsed: dict[str, Any] = {}
    version = raw.get("version", "")
    if not version.isdigit() or not 1 <= int(version[:6]) <= VERSION:
        raise st.error(f"unsupported bpx format version {_short(version)} (this bpx, {__version__}, reads 1 to "
                       f"{VERSION})")
    if raw.get("dtype") not in FLOAT_DTYPES:
        raise st.error(f"the metadata's dtype {_short(raw.get('dtype'))} is not one of {FLOAT_DTYPES}")
    parsed["dtype"] = raw["dtype"]
    for key in ("seed", "step_count", "epochs_trained"):
        text = raw.get(key, "0")
        if not text.isdigit() or len(text) > 19 or int(text) >= 2**63:
            raise st.error(f"the metadata's {key!r} is {_short(text)}, expected a non-negative int below 2**63")
        parsed[key] = int(text)
    for key, check, expected in (("config", lambda v: isinstance(v, dict), "an object"),
                                 ("loss", _is_loss, "null or a loss description"),
                                 ("metrics", lambda v: v is None or _is_names(v), "null or a list of names"),
                                 ("optimizer", _is_optimizer, "null or an optimizer description")):
        text = raw.get(key, "null")
        try:
            value = strict_json(text)
        except (ValueError, RecursionError) as err:
            raise st.error(f"the metadata's {key!r} is not valid JSON ({type(err).__name__}: {err})") from None
        if not check(value):
            raise st.error(f"the metadata's {key!r} is {_short(value)}, expected {expected}")
        parsed[key] = value
    return parsed


def _check_budget(st: SafetensorsReader, config: dict[str, Any], dtype: str) -> None:
    """Refuse an architecture whose parameters and buffers need more values than the file holds,
    before building it (a layer's constructor allocates nothing but explicit values)."""
    specs = config.get("layers")
    if not isinstance(specs, list) or not specs:
        raise st.error(f"invalid architecture: 'layers' is {_short(specs)}, not a list of layers")
    declared = 0
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise st.error(f"invalid architecture: layers[{i}] is {_short(spec)}, not an object")
        if "same_as" in spec:
            continue
        explicit = [key for key in ("weight", "bias") if spec.get(key) is not None]
        if explicit:
            raise st.error(f"invalid architecture: layers[{i}] holds explicit {' and '.join(explicit)} values")
        try:
            layer = layer_from_config(spec.get("type"), {k: v for k, v in spec.items() if k != "type"})
        except _CONFIG_ERRORS as err:
            raise st.error(f"invalid architecture: layers[{i}]: {err}") from None
        declared += sum(element_count(item.shape) for item in [*layer.parameters(), *layer.buffers()])
    stored = sum(math.prod(shape) for name, (_, shape, _, _) in st.entries.items() if not name.startswith(OPTIM))
    if declared > stored:
        raise st.error(f"the architecture needs {declared} parameter and buffer values but the file's tensors hold "
                       f"{stored}")


def _values(st: SafetensorsReader, name: str, shape: tuple[int, ...], target: Backend) -> np.ndarray:
    found = st.entries[name][1]
    if found != tuple(shape):
        raise st.error(f"tensor {name!r} has shape {found} but the architecture needs {tuple(shape)}")
    array = st.array(name)
    if not is_finite_host(array):
        raise st.error(f"tensor {name!r} holds NaN or inf")
    try:
        check_representable(array, target.master_dtype_name, f"tensor {name!r}")
    except BpxError as err:
        raise st.error(str(err)) from None
    return array


def _check_names(st: SafetensorsReader, what: str, expected: set[str], present: set[str]) -> None:
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing or extra:
        raise st.error(f"{what}: missing {missing[:10]}, unexpected {[n[:80] for n in extra[:10]]}")


def _loss(st: SafetensorsReader, spec: Any) -> Loss | None:
    if spec is None:
        return None
    cls = LOSSES.get(spec["name"])
    if cls is None:
        raise st.error(f"unknown loss {_short(spec['name'])} in the metadata; known: {', '.join(LOSSES)}")
    try:
        return cls(**spec.get("config", {}))
    except _CONFIG_ERRORS as err:
        raise st.error(f"invalid loss in the metadata ({type(err).__name__}: {err})") from None


def _load_optimizer(st: SafetensorsReader, meta: dict[str, Any], net: Network) -> Optimizer:
    cls = _OPTIMIZER_CLASSES.get(meta["class"])
    if cls is None:
        raise st.error(f"unknown optimizer class {_short(meta['class'])} (known: {', '.join(_OPTIMIZER_CLASSES)})")
    try:
        optimizer = cls(**meta["hyperparameters"])
    except _CONFIG_ERRORS as err:
        raise st.error(f"invalid optimizer in the metadata ({type(err).__name__}: {err})") from None
    params = net.named_parameters()
    trainable = {name for name, p in params.items() if p.trainable}
    listing: dict[str, list[str]] = meta["state"]
    keys = sorted(optimizer.keys())
    if not set(listing) <= trainable or (listing and set(listing) != trainable):
        raise st.error(f"the optimizer state covers {sorted(listing)[:10]} but the trainable parameters are "
                       f"{sorted(trainable)[:10]}")
    for pname, names in listing.items():
        if sorted(names) != keys:
            raise st.error(f"optimizer state of {pname} has {sorted(names)}, but {cls.__name__} keeps {keys}")
    expected = {f"{OPTIM}{pname}/{key}" for pname, names in listing.items() for key in names}
    _check_names(st, "optimizer state tensors do not match the metadata", expected,
                 {n for n in st.names if n.startswith(OPTIM)})
    values = {params[pname]: {key: _values(st, f"{OPTIM}{pname}/{key}", params[pname].shape, net.backend)
                              for key in names}
              for pname, names in listing.items()}
    optimizer.load_parameter_state(net.store, values, meta["iterations"])
    try:
        optimizer.base_lr = check_float(meta.get("base_lr", optimizer.lr), "the optimizer's base_lr", 0.0,
                                        low_open=True)
    except BpxError as err:
        raise st.error(f"invalid optimizer in the metadata ({err})") from None
    return optimizer


# ---------------------------------------------------------------------- strict JSON
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(m, str) for m in v)


def _is_loss(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("name"), str)
                         and isinstance(v.get("config", {}), dict))


def _is_optimizer(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("class"), str)
                         and isinstance(v.get("hyperparameters"), dict) and _is_int(v.get("iterations"))
                         and 0 <= v["iterations"] < 2**63 and isinstance(v.get("state"), dict)
                         and all(_is_names(k) for k in v["state"].values()))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
