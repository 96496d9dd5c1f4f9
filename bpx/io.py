"""Checkpoints: a network's architecture and weights, and optionally its optimizer, in one ``.npz``.

File layout: a NumPy ``.npz`` (a zip of ``.npy`` arrays), readable with ``numpy.load`` and
never needing pickle:

===========================  ==================  ================================================
array                        dtype               content
===========================  ==================  ================================================
``header``                   ``uint8`` (1-D)     UTF-8 JSON, below
``layers.0.weight``, ...     ``<f4`` or ``<f8``  one per key of ``Sequential.named_parameters()``
``optim/<param>/<key>``      ``<f4`` or ``<f8``  optimizer state (only when saved with one),
                                                 e.g. ``optim/layers.0.weight/velocity``
===========================  ==================  ================================================

The header::

    {"format": "bpx-checkpoint", "version": 1, "bpx_version": "0.1.0", "dtype": "float32",
     "backend": {"name": "torch", "device": "cuda:0"},        # where it was saved (informational)
     "config": {...},                                         # Sequential.config()
     "parameters": {"layers.0.weight": {"shape": [784, 256], "dtype": "<f4"}, ...},
     "optimizer": null | {"class": "Adam", "hyperparameters": {...}, "iterations": 1200,
                          "state": {"layers.0.weight": ["m", "v"], ...}}}

Arrays are copied through the host (:func:`bpx.to_host`) and stored little-endian, so a
checkpoint written on a GPU loads on a CPU-only machine and on any backend. Writing is atomic:
a temporary file in the target directory is written, fsync'ed and renamed over the target, so
an interrupted save leaves any earlier checkpoint intact. A host-boundary module: uses NumPy.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from .backend import FLOAT_DTYPES, Backend, get_backend, to_host
from .layers import Parameter
from .network import Sequential
from .optim import OPTIMIZERS, Optimizer

FORMAT = "bpx-checkpoint"
VERSION = 1
HEADER = "header"
OPTIM = "optim/"

_OPTIMIZER_CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip
_NPY_MAGIC = b"\x93NUMPY"
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask can only be read by setting it


class CheckpointError(ValueError):
    """A file is not a valid bpx checkpoint, or does not fit the network it describes.
    The message names the file and the problem."""


# ---------------------------------------------------------------------- save
def save(net: Sequential, path: str | os.PathLike[str], optimizer: Optimizer | None = None) -> Path:
    """Write ``net`` (and ``optimizer``: class, hyperparameters, step count and state) to ``path``.

    ``.npz`` is appended when ``path`` does not end with it (as ``numpy.savez`` does); the path
    written is returned. The write is atomic: an existing file at that path is replaced only by
    a complete checkpoint, and keeps its permission bits. Raises ``ValueError`` for non-finite
    weights, an optimizer that is not one of bpx's, or one holding state for parameters of
    another network.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    _write_atomic(path, _arrays(net, optimizer))
    return path


def _arrays(net: Sequential, optimizer: Optimizer | None) -> dict[str, np.ndarray]:
    from . import __version__

    params = net.named_parameters()
    arrays = {name: _host(p.value, name) for name, p in params.items()}
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "bpx_version": __version__, "dtype": net.backend.dtype_name,
        "backend": {"name": net.backend.name, "device": str(net.backend.device)},
        "config": net.config(),
        "parameters": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()},
        "optimizer": None,
    }
    if optimizer is not None:
        header["optimizer"] = _optimizer_header(optimizer, params)
        for pname, keys in header["optimizer"]["state"].items():
            state = optimizer.state[params[pname]]
            for key in keys:
                arrays[f"{OPTIM}{pname}/{key}"] = _host(state[key], f"optimizer state {key!r} of {pname}")
    arrays[HEADER] = np.frombuffer(json.dumps(header, allow_nan=False).encode("utf-8"), dtype=np.uint8)
    return arrays


def _optimizer_header(optimizer: Optimizer, params: dict[str, Parameter]) -> dict[str, Any]:
    cls = type(optimizer)
    if _OPTIMIZER_CLASSES.get(cls.__name__) is not cls:
        raise ValueError(f"cannot save the optimizer {optimizer!r}: only bpx's own optimizers "
                         f"({', '.join(_OPTIMIZER_CLASSES)}) can be saved")
    known = set(params.values())
    foreign = [p for p in optimizer.state if p not in known]
    if foreign:
        raise ValueError(f"cannot save the optimizer: it holds state for {foreign}, which are not parameters "
                         "of this network (was it used to train another network?)")
    return {"class": cls.__name__, "hyperparameters": optimizer.hyperparameters(),
            "iterations": optimizer.iterations,
            "state": {name: list(optimizer.state[p]) for name, p in params.items() if p in optimizer.state}}


def _host(value: Any, name: str) -> np.ndarray:
    """``value`` as a little-endian float host array; refuses NaN and inf (such a file would not load)."""
    host = to_host(value)
    if host.dtype.kind != "f":
        raise ValueError(f"cannot save {name}: expected a float array, got dtype {host.dtype}")
    if not np.all(np.isfinite(host)):
        raise ValueError(f"cannot save {name}: it holds NaN or inf (did training diverge?)")
    return host.astype(host.dtype.newbyteorder("<"), copy=False)


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    mode = (os.stat(path).st_mode & 0o7777) if path.exists() else (0o666 & ~_UMASK)
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with tmp:
            np.savez(tmp, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, mode)  # NamedTemporaryFile creates 0600
        os.replace(tmp.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    with contextlib.suppress(OSError):  # make the rename durable; directories cannot be opened on Windows
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------- load
@overload
def load(path: str | os.PathLike[str], backend: str | Backend | None = ..., device: Any = ...,
         dtype: Any = ..., *, with_optimizer: Literal[False] = ...) -> Sequential: ...


@overload
def load(path: str | os.PathLike[str], backend: str | Backend | None = ..., device: Any = ...,
         dtype: Any = ..., *, with_optimizer: Literal[True]) -> tuple[Sequential, Optimizer]: ...


def load(path: str | os.PathLike[str], backend: str | Backend | None = None, device: Any = None,
         dtype: Any = None, *, with_optimizer: bool = False) -> Sequential | tuple[Sequential, Optimizer]:
    """Rebuild the network saved at ``path`` on ``backend``/``device`` (see :func:`bpx.get_backend`;
    the backend it was saved from does not matter).

    ``dtype`` defaults to the saved dtype (or the dtype of ``backend`` when that is a
    :class:`Backend`). With ``with_optimizer=True`` returns ``(net, optimizer)``: the optimizer
    rebuilt with its hyperparameters, step count and state on the network's device, so training
    continues exactly where it stopped. Raises :class:`CheckpointError` for a file that is not a
    valid checkpoint (foreign, truncated, corrupt, newer format, weights missing, extra, misshapen
    or non-finite) and ``FileNotFoundError`` when there is no file.
    """
    path = Path(path)
    with _open(path) as npz:
        header = _header(path, npz)
        if dtype is None and not isinstance(backend, Backend):
            dtype = header["dtype"]
        target = get_backend(backend, device, dtype)
        try:
            net = Sequential.from_config(header["config"], backend=target, seed=0)
        except (ValueError, TypeError) as err:
            raise _error(path, f"invalid architecture in the header: {err}") from None
        params = net.named_parameters()
        weights = {n for n in npz.files if n != HEADER and not n.startswith(OPTIM)}
        _check_names(path, "weight arrays do not match the architecture", set(params), weights)
        net.load_state_dict({name: _float_array(path, npz, name, p.shape) for name, p in params.items()})
        if not with_optimizer:
            return net
        return net, _load_optimizer(path, npz, header, params, target)


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked JSON header of the checkpoint at ``path`` (architecture, dtype, where it was
    saved, optimizer), without loading any weights."""
    path = Path(path)
    with _open(path) as npz:
        return _header(path, npz)


def _error(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"cannot load checkpoint {str(path)!r}: {problem}")


def _open(path: Path) -> Any:
    """The open ``NpzFile`` at ``path``, after checking it is a zip archive at all."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        hint = ""
        if path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
            hint = f"; did you mean {path.name + '.npz'!r}?"
        raise FileNotFoundError(errno.ENOENT, f"no bpx checkpoint at this path{hint}", str(path)) from None
    if magic == _NPY_MAGIC:
        raise _error(path, "it is a single NumPy .npy array, not a checkpoint (an .npz written by bpx.save)")
    if not magic.startswith(_ZIP_MAGIC):
        raise _error(path, f"not an .npz archive (it starts with {magic!r}); checkpoints are written by bpx.save")
    try:
        return np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise _error(path, f"truncated or corrupt .npz archive ({err})") from None


def _header(path: Path, npz: Any) -> dict[str, Any]:
    """The parsed header, checked for format name, version, dtype and architecture presence."""
    if HEADER not in npz.files:
        raise _error(path, f"no {HEADER!r} array, so not a bpx checkpoint (arrays: {sorted(npz.files)[:5]})")
    raw = _array(path, npz, HEADER)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _error(path, f"the header must be a 1-D uint8 array, got {raw.dtype} of shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError
        raise _error(path, f"the header is not UTF-8 JSON ({err})") from None
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt != FORMAT:
        raise _error(path, f"the header's format is {fmt!r}, not {FORMAT!r}")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _error(path, f"invalid format version {version!r}")
    if version > VERSION:
        from . import __version__
        raise _error(path, f"format version {version} is newer than this bpx ({__version__}) reads "
                           f"(up to {VERSION}); upgrade bpx")
    if "config" not in header:
        raise _error(path, "the header has no 'config' (architecture)")
    if header.get("dtype") not in FLOAT_DTYPES:
        raise _error(path, f"the header's dtype {header.get('dtype')!r} is not one of {FLOAT_DTYPES}")
    return header


def _array(path: Path, npz: Any, name: str) -> np.ndarray:
    try:
        value = npz[name]
    except _READ_ERRORS as err:  # CRC mismatch, truncated member, pickled object array, ...
        raise _error(path, f"array {name!r} cannot be read ({err})") from None
    if not isinstance(value, np.ndarray):
        raise _error(path, f"member {name!r} is not a .npy array")
    return value


def _float_array(path: Path, npz: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Array ``name`` checked to be finite floats of ``shape``, in native byte order."""
    a = _array(path, npz, name)
    if a.dtype.kind != "f":
        raise _error(path, f"array {name!r} has dtype {a.dtype}, expected float32 or float64")
    if a.shape != shape:
        raise _error(path, f"array {name!r} has shape {a.shape} but the architecture needs {shape}")
    if not np.all(np.isfinite(a)):
        raise _error(path, f"array {name!r} holds NaN or inf")
    return a.astype(a.dtype.newbyteorder("="), copy=False)


def _check_names(path: Path, what: str, expected: set[str], present: set[str]) -> None:
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing or extra:
        raise _error(path, f"{what}: missing {missing}, unexpected {extra}")


def _load_optimizer(path: Path, npz: Any, header: dict[str, Any], params: dict[str, Parameter],
                    backend: Backend) -> Optimizer:
    meta = header.get("optimizer")
    if meta is None:
        raise _error(path, "it holds no optimizer (saved without optimizer=); load it with with_optimizer=False")
    try:
        optimizer = _OPTIMIZER_CLASSES[meta["class"]](**meta["hyperparameters"])
        iterations = meta["iterations"]
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
        listing = {pname: [str(key) for key in keys] for pname, keys in meta["state"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _error(path, f"invalid optimizer in the header ({type(err).__name__}: {err})") from None
    unknown = sorted(listing.keys() - params.keys())
    if unknown:
        raise _error(path, f"optimizer state for parameters the network does not have: {unknown}")
    expected = {f"{OPTIM}{pname}/{key}" for pname, keys in listing.items() for key in keys}
    present = {n for n in npz.files if n.startswith(OPTIM)}
    _check_names(path, "optimizer state arrays do not match the header", expected, present)
    optimizer.iterations = iterations
    for pname, keys in listing.items():
        p = params[pname]
        state = optimizer.init_state(p)
        if sorted(keys) != sorted(state):
            raise _error(path, f"optimizer state of {pname} has {sorted(keys)}, but {type(optimizer).__name__} "
                               f"with these hyperparameters keeps {sorted(state)}")
        for key in keys:
            host = _float_array(path, npz, f"{OPTIM}{pname}/{key}", p.shape)
            state[key] = backend.asarray(host, backend.dtype, copy=True)
        optimizer.state[p] = state
    return optimizer
