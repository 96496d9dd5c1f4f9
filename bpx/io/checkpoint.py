"""Checkpoints: a network's architecture, weights, loss and optionally its optimizer, in one ``.npz``.

File layout: a NumPy ``.npz`` (a zip of ``.npy`` arrays, as ``numpy.savez`` writes it), readable
with ``numpy.load`` and never needing pickle:

===========================  ==================  ================================================
array                        dtype               content
===========================  ==================  ================================================
``header``                   ``uint8`` (1-D)     UTF-8 JSON, below
``layers.0.weight``, ...     the header's dtype  one per parameter and buffer of the network
``optim/<param>/<key>``      the header's dtype  optimizer state (only when saved with one),
                                                 e.g. ``optim/layers.0.weight/velocity``
===========================  ==================  ================================================

bpx writes arrays little-endian (``<f4`` or ``<f8``); big-endian ones (``>f4``, ``>f8``) load too.
The header (format version 2; version 1 files, from bpx 0.1, have no seed, step count, loss,
metrics or buffers, and still load)::

    {"format": "bpx-checkpoint", "version": 2, "bpx_version": "0.2.0", "dtype": "float32",
     "backend": {"name": "torch", "device": "cuda:0"},        # where it was saved (informational)
     "config": {...},                                         # Network.config()
     "seed": 0, "step_count": 4690,
     "loss": {"name": "softmax_cross_entropy", "config": {}} | null,  "metrics": ["accuracy"] | null,
     "parameters": {"layers.0.weight": {"shape": [784, 256], "dtype": "<f4"}, ...},
     "buffers": {...},                                        # same form
     "optimizer": null | {"class": "Adam", "hyperparameters": {...}, "iterations": 1200,
                          "state": {"layers.0.weight": ["m", "v"], ...}}}

The optimizer state lists every trainable parameter (or none, before the first update). Only
bpx's own losses are recorded (a custom loss is written as ``null``). Arrays are copied through
the host, so a checkpoint written on a GPU loads on a CPU-only machine and on any backend.
Writing is atomic (:mod:`bpx.host.files`).

Reading trusts nothing (see :mod:`bpx.io.npz`): the JSON header may take at most
``HEADER_EXPANSION`` bytes per byte of file (and 4 MiB), nest at most ``MAX_JSON_DEPTH`` deep,
and must hold finite numbers and unique keys; the architecture's parameters and buffers must fit
the archive's budget (``MAX_EXPANSION`` bytes per byte of file) *before* the network is built;
every array must have the header's dtype, the architecture's shape and finite values. Every
problem is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..backend import FLOAT_DTYPES, Backend, get_backend
from ..checks import check_float
from ..errors import (
    BpxError,
    BpxTypeError,
    CheckpointWriteError,
    NonFiniteError,
    StateError,
)
from ..host.arrays import check_representable, element_count, is_finite_host, to_host
from ..host.files import atomic_write, check_writable
from ..nn.layer import layer_from_config
from ..nn.losses import LOSSES, METRICS, Loss
from ..nn.network import Network
from ..optim.optimizers import OPTIMIZERS, Optimizer
from ..version import __version__
from .npz import SLACK, NpzReader
from .untrusted import existing_file, strict_json

FORMAT = "bpx-checkpoint"
VERSION = 2
HEADER = "header"
OPTIM = "optim/"
MAX_HEADER_BYTES = 4 << 20
#: The JSON header may declare at most this many bytes per byte of file (bpx stores it
#: uncompressed; JSON deflates about 5-15 times), so a small file cannot hold a huge header.
HEADER_EXPANSION = 16
#: An archive may declare at most this many bytes of arrays per byte of file (deflate's
#: best ratio is about 1032:1), so a small file can never make bpx allocate much.
MAX_EXPANSION = 1100
#: Layer arguments that carry parameter values: never part of a checkpoint's architecture.
EXPLICIT_VALUES = ("weight", "bias")
#: What building a network from an untrusted architecture may raise besides bpx's own errors.
_CONFIG_ERRORS = (BpxError, TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError)

N = TypeVar("N", bound=Network)
_OPTIMIZER_CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}


# ---------------------------------------------------------------------- save
def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.npz`` appended when it does not end with it (as ``numpy.savez`` does).
    Raises :class:`CheckpointWriteError` for a path that names a folder (``"runs/"``, ``"."``)."""
    text = os.fspath(path)
    name = Path(text).name
    if not name or name == ".." or text.endswith(("/", os.sep)):
        raise CheckpointWriteError(f"cannot write checkpoint {text!r}: it names a folder, not a file")
    path = Path(text)
    return path if path.suffix == ".npz" else path.with_name(name + ".npz")


def save_checkpoint(net: Network, path: str | os.PathLike[str], optimizer: Optimizer | None = None) -> Path:
    """Write ``net`` (and ``optimizer``: class, hyperparameters, step count and state) to ``path``.

    Returns the path written (``.npz`` appended when missing). The path is checked first; the
    write is atomic: an existing file at that path is replaced only by a complete checkpoint and
    keeps its permission bits. Raises :class:`CheckpointWriteError` naming ``path`` when it
    cannot be written, :class:`NonFiniteError` for non-finite weights, buffers or optimizer state,
    and :class:`StateError` for a network on PyTorch's ``meta`` device or an optimizer that is not
    bpx's or holds the state of another network.
    """
    path = check_writable(checkpoint_path(path), "checkpoint")
    net.backend.require_data(f"saving checkpoint {str(path)!r}")
    what = f"cannot save checkpoint {str(path)!r}"
    arrays = _arrays(net, optimizer, what)
    with atomic_write(path, "checkpoint") as f:
        np.savez(f, **arrays)
    return path


def _arrays(net: Network, optimizer: Optimizer | None, what: str) -> dict[str, np.ndarray]:
    net.store.check_finite(what)
    state = net.state_dict()
    params, buffers = net.named_parameters(), net.named_buffers()
    for name in buffers:
        if not is_finite_host(state[name]):
            raise NonFiniteError(f"{what}: buffer {name!r} holds NaN or inf")
    arrays = {name: _little_endian(value) for name, value in state.items()}
    loss = net.loss
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "bpx_version": __version__, "dtype": net.backend.master_dtype_name,
        "backend": {"name": net.backend.name, "device": str(net.backend.device)},
        "config": net.config(), "seed": net.seed, "step_count": net.step_count,
        "epochs_trained": net.epochs_trained,
        "loss": {"name": loss.name, "config": loss.config()} if _is_own_loss(loss) else None,
        "metrics": net.metrics,
        "parameters": {name: _describe(arrays[name]) for name in params},
        "buffers": {name: _describe(arrays[name]) for name in buffers},
        "optimizer": None,
    }
    if optimizer is not None:
        header["optimizer"] = _optimizer_part(net, optimizer, params, arrays, what)
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise BpxTypeError(f"{what}: its configuration is not JSON data ({err})") from None
    arrays[HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _is_own_loss(loss: Loss | None) -> bool:
    return loss is not None and LOSSES.get(loss.name) is type(loss)


def _describe(array: np.ndarray) -> dict[str, Any]:
    return {"shape": list(array.shape), "dtype": array.dtype.str}


def _little_endian(host: np.ndarray) -> np.ndarray:
    return host.astype(host.dtype.newbyteorder("<"), copy=False)


def _optimizer_part(net: Network, optimizer: Optimizer, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    what: str) -> dict[str, Any]:
    """The optimizer's header entry; its state arrays are added to ``arrays``."""
    cls = type(optimizer)
    if _OPTIMIZER_CLASSES.get(cls.__name__) is not cls:
        raise StateError(f"{what}: only bpx's own optimizers ({', '.join(_OPTIMIZER_CLASSES)}) can be saved, "
                         f"not {optimizer!r}")
    if optimizer.state and not optimizer.is_bound_to(net.store):
        raise StateError(f"{what}: the optimizer holds the state of another network")
    names = {p: name for name, p in params.items()}
    listing: dict[str, list[str]] = {}
    for p, values in optimizer.parameter_state(net.store).items():
        listing[names[p]] = list(values)
        for key, value in values.items():
            host = to_host(value)
            if not is_finite_host(host):
                raise NonFiniteError(f"{what}: the optimizer's {key!r} of parameter {names[p]!r} holds NaN or inf")
            arrays[f"{OPTIM}{names[p]}/{key}"] = _little_endian(host)
    return {"class": cls.__name__, "hyperparameters": optimizer.hyperparameters(),
            "base_lr": optimizer.base_lr, "iterations": optimizer.iterations, "state": listing}


# ---------------------------------------------------------------------- load
def load_checkpoint(path: str | os.PathLike[str], backend: str | Backend | None = None, device: Any = None,
                    dtype: Any = None, *, with_optimizer: bool = False,
                    network_class: type[N] = Network) -> N | tuple[N, Optimizer]:  # type: ignore[assignment]
    """Rebuild the network saved at ``path`` on ``backend``/``device`` as ``network_class``.

    ``dtype`` defaults to the saved dtype (or the dtype of ``backend`` when that is a
    :class:`Backend`). With ``with_optimizer=True`` returns ``(net, optimizer)``: the optimizer
    rebuilt with its hyperparameters, step count and state on the network's device, so training
    continues exactly where it stopped. Raises :class:`CheckpointError` for a file that is not a
    valid checkpoint (or whose values overflow ``dtype``), ``FileNotFoundError`` when there is no
    file, and :class:`StateError` for PyTorch's ``meta`` device (it cannot hold the weights).
    """
    path = existing_file(Path(path), ".npz")
    with NpzReader(path, expansion=MAX_EXPANSION) as npz:
        header = _header(npz)
        _check_budget(npz, header)
        loss = _loss(npz, header)
        if dtype is None and not isinstance(backend, Backend):
            dtype = header["dtype"]
        target = get_backend(backend, device, dtype)
        target.require_data(f"loading checkpoint {str(path)!r}")
        try:
            net = network_class.from_config(header["config"], backend=target, seed=header.get("seed", 0))
        except _CONFIG_ERRORS as err:
            raise npz.error(f"invalid architecture in the header ({type(err).__name__}: {err})") from None
        params, buffers = net.named_parameters(), net.named_buffers()
        descrs = _descrs(header["dtype"])
        _check_listing(npz, header, "parameters", params, descrs)
        _check_listing(npz, header, "buffers", buffers, descrs)
        weights = {n for n in npz.names if n != HEADER and not n.startswith(OPTIM)}
        _check_names(npz, "arrays do not match the architecture", set(params) | set(buffers), weights)
        if header.get("optimizer") is None and any(n.startswith(OPTIM) for n in npz.names):
            raise npz.error("it holds optimizer state arrays but its header has no optimizer")
        shapes = {name: item.shape for name, item in [*params.items(), *buffers.items()]}
        state = {name: _values(npz, name, shape, descrs, target) for name, shape in shapes.items()}
        try:
            net.load_state_dict(state)
        except BpxError as err:  # pragma: no cover - the arrays were checked above
            raise npz.error(str(err)) from None
        net.loss, net.metrics = loss, header.get("metrics")
        net.step_count = header.get("step_count", 0)
        net.epochs_trained = header.get("epochs_trained", 0)
        if not with_optimizer:
            return net
        return net, _load_optimizer(npz, header, net, descrs)


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked JSON header of the checkpoint at ``path`` (architecture, dtype, where it was
    saved, loss, optimizer), without loading any weights."""
    with NpzReader(existing_file(Path(path), ".npz"), expansion=MAX_EXPANSION) as npz:
        return _header(npz)


def _descrs(dtype: str) -> frozenset[str]:
    """The ``.npy`` dtypes of an array in ``dtype`` (either byte order)."""
    code = np.dtype(dtype).str[1:]
    return frozenset({f"<{code}", f">{code}"})


def _header(npz: NpzReader) -> dict[str, Any]:
    """The parsed header, checked for format, version, dtype, and the types of every field."""
    if HEADER not in npz.names:
        raise npz.error(f"no {HEADER!r} array, so not a bpx checkpoint (arrays: {sorted(npz.names)[:5]})")
    limit = min(MAX_HEADER_BYTES, HEADER_EXPANSION * npz.size + SLACK)
    raw = npz.array(HEADER, dtypes={"|u1"}, ndim=1, max_bytes=limit)
    try:
        header = strict_json(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError, JSONDecodeError, NaN, deep nesting
        raise npz.error(f"the header is not valid UTF-8 JSON ({type(err).__name__}: {err})") from None
    if not isinstance(header, dict):
        raise npz.error(f"the header is not a JSON object but {_short(header)}")
    if header.get("format") != FORMAT:
        raise npz.error(f"the header's format is {_short(header.get('format'))}, not {FORMAT!r}")
    version = header.get("version")
    if not _is_int(version) or version < 1:
        raise npz.error(f"invalid format version {_short(version)}")
    if version > VERSION:
        raise npz.error(f"format version {version} is newer than this bpx ({__version__}) reads (up to {VERSION}); "
                        "upgrade bpx")
    if not isinstance(header.get("config"), dict):
        raise npz.error("the header has no 'config' (architecture) object")
    if header.get("dtype") not in FLOAT_DTYPES:
        raise npz.error(f"the header's dtype {_short(header.get('dtype'))} is not one of {FLOAT_DTYPES}")
    for key, check, what in (("seed", _is_count, "a non-negative int below 2**63"),
                             ("step_count", _is_count, "a non-negative int below 2**63"),
                             ("epochs_trained", _is_count, "a non-negative int below 2**63"),
                             ("metrics", _is_metrics, "null or a list of names"),
                             ("loss", _is_loss, "null or a loss description"),
                             ("optimizer", _is_optimizer, "null or an optimizer description"),
                             ("parameters", _is_listing, "an object of {'shape', 'dtype'} entries"),
                             ("buffers", _is_listing, "an object of {'shape', 'dtype'} entries")):
        if key in header and not check(header[key]):
            raise npz.error(f"the header's {key!r} is {_short(header[key])}, expected {what}")
    return header


def _check_budget(npz: NpzReader, header: dict[str, Any]) -> None:
    """Refuse an architecture whose parameters and buffers could not fit in the file (or are more than
    its members declare), before building it: a layer's constructor allocates nothing but explicit
    values, which a checkpoint never holds."""
    specs = header["config"].get("layers")
    if not isinstance(specs, list) or not specs:
        raise npz.error(f"invalid architecture in the header: 'layers' is {_short(specs)}, not a list of layers")
    declared = 0
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise npz.error(f"invalid architecture in the header: layers[{i}] is {_short(spec)}, not an object")
        if "same_as" in spec:
            continue
        explicit = [key for key in EXPLICIT_VALUES if spec.get(key) is not None]
        if explicit:
            raise npz.error(f"invalid architecture in the header: layers[{i}] holds explicit {' and '.join(explicit)} "
                            "values (a checkpoint's weights are arrays, never part of its architecture)")
        try:
            layer = layer_from_config(spec.get("type"), {k: v for k, v in spec.items() if k != "type"})
        except _CONFIG_ERRORS as err:
            raise npz.error(f"invalid architecture in the header: layers[{i}]: {err}") from None
        declared += sum(element_count(item.shape) for item in [*layer.parameters(), *layer.buffers()])
    nbytes = declared * np.dtype(header["dtype"]).itemsize
    if nbytes > npz.budget:
        raise npz.error(f"the architecture declares {nbytes} bytes of parameters and buffers, more than a file of "
                        f"{npz.size} bytes can hold")
    stored = sum(npz.member_size(n) for n in npz.names if n != HEADER and not n.startswith(OPTIM))
    if nbytes > stored:
        raise npz.error(f"the architecture declares {nbytes} bytes of parameters and buffers, but the file's arrays "
                        f"hold at most {stored}")


def _check_listing(npz: NpzReader, header: dict[str, Any], key: str, items: dict[str, Any],
                   descrs: frozenset[str]) -> None:
    """The header's ``parameters``/``buffers`` listing (when present) must describe the network."""
    listing = header.get(key)
    if listing is None:
        return
    _check_names(npz, f"the header's {key!r} do not match the architecture", set(items), set(listing))
    for name, item in items.items():
        entry = listing[name]
        if entry["shape"] != list(item.shape) or entry["dtype"] not in descrs:
            raise npz.error(f"the header lists {name!r} as {_short(entry)}, but the architecture and dtype need "
                            f"shape {list(item.shape)} of {header['dtype']}")


def _values(npz: NpzReader, name: str, shape: tuple[int, ...], descrs: frozenset[str], target: Backend) -> np.ndarray:
    """Array ``name``: of ``shape``, finite, and representable in ``target``'s dtype."""
    array = npz.array(name, dtypes=descrs, shape=shape)
    if not is_finite_host(array):
        raise npz.error(f"array {name!r} holds NaN or inf")
    try:
        check_representable(array, target.dtype_name, f"array {name!r}")
    except BpxError as err:
        raise npz.error(str(err)) from None
    return array


def _loss(npz: NpzReader, header: dict[str, Any]) -> Loss | None:
    spec = header.get("loss")
    if spec is None:
        return None
    cls = LOSSES.get(spec["name"])
    if cls is None:
        raise npz.error(f"unknown loss {_short(spec['name'])} in the header; known: {', '.join(LOSSES)}")
    try:
        return cls(**spec.get("config", {}))
    except _CONFIG_ERRORS as err:
        raise npz.error(f"invalid loss in the header ({type(err).__name__}: {err})") from None


def _check_names(npz: NpzReader, what: str, expected: set[str], present: set[str]) -> None:
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing or extra:
        raise npz.error(f"{what}: missing {missing[:10]}, unexpected {extra[:10]}")


def _load_optimizer(npz: NpzReader, header: dict[str, Any], net: Network, descrs: frozenset[str]) -> Optimizer:
    meta = header.get("optimizer")
    if meta is None:
        raise npz.error("it holds no optimizer (saved without one); load it with with_optimizer=False")
    cls = _OPTIMIZER_CLASSES.get(meta["class"])
    if cls is None:
        raise npz.error(f"invalid optimizer in the header: unknown class {_short(meta['class'])} "
                        f"(known: {', '.join(_OPTIMIZER_CLASSES)})")
    try:
        optimizer = cls(**meta["hyperparameters"])
    except _CONFIG_ERRORS as err:
        raise npz.error(f"invalid optimizer in the header ({type(err).__name__}: {err})") from None
    iterations, listing = meta["iterations"], meta["state"]
    params = net.named_parameters()
    trainable = {name for name, p in params.items() if p.trainable}
    unknown = sorted(listing.keys() - params.keys())
    if unknown:
        raise npz.error(f"optimizer state for parameters the network does not have: {unknown[:10]}")
    frozen = sorted(listing.keys() - trainable)
    if frozen:
        raise npz.error(f"optimizer state for frozen parameters: {frozen[:10]}")
    keys = sorted(optimizer.keys())
    if keys and listing.keys() != trainable and (listing or iterations > 0):
        raise npz.error(f"the optimizer state covers {sorted(listing)[:10]} but the trainable parameters are "
                        f"{sorted(trainable)[:10]}")
    for pname, names in listing.items():
        if sorted(names) != keys:
            raise npz.error(f"optimizer state of {pname} has {sorted(names)}, but {cls.__name__} with these "
                            f"hyperparameters keeps {keys}")
    expected = {f"{OPTIM}{pname}/{key}" for pname, names in listing.items() for key in names}
    _check_names(npz, "optimizer state arrays do not match the header", expected,
                 {n for n in npz.names if n.startswith(OPTIM)})
    values = {params[pname]: {key: _values(npz, f"{OPTIM}{pname}/{key}", params[pname].shape, descrs, net.backend)
                              for key in names}
              for pname, names in listing.items()}
    optimizer.load_parameter_state(net.store, values, iterations)
    base_lr = meta.get("base_lr", optimizer.lr)
    try:
        optimizer.base_lr = check_float(base_lr, "the optimizer's base_lr", 0.0, low_open=True)
    except BpxError as err:
        raise npz.error(f"invalid optimizer in the header ({err})") from None
    return optimizer


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return _is_int(v) and 0 <= v < 2**63


def _is_names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(m, str) for m in v)


def _is_metrics(v: Any) -> bool:
    return v is None or (_is_names(v) and all(name in METRICS for name in v))


def _is_loss(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("name"), str)
                         and isinstance(v.get("config", {}), dict))


def _is_optimizer(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("class"), str)
                         and isinstance(v.get("hyperparameters"), dict) and _is_count(v.get("iterations"))
                         and isinstance(v.get("state"), dict) and all(_is_names(k) for k in v["state"].values()))


def _is_listing(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(e, dict) and isinstance(e.get("dtype"), str) and isinstance(e.get("shape"), list)
        and all(_is_int(d) for d in e["shape"]) for e in v.values())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
