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

import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..backend import FLOAT_DTYPES, Backend, get_backend
from ..errors import CheckpointWriteError
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
    is_int,
    json_text,
    load_arrays,
    restore_optimizer,
    short,
)
from .npz import SLACK, NpzReader
from .untrusted import existing_file, strict_json

HEADER = "header"
MAX_HEADER_BYTES = 4 << 20
#: The JSON header may declare at most this many bytes per byte of file (bpx stores it
#: uncompressed; JSON deflates about 5-15 times), so a small file cannot hold a huge header.
HEADER_EXPANSION = 16
#: An archive may declare at most this many bytes of arrays per byte of file (deflate's
#: best ratio is about 1032:1), so a small file can never make bpx allocate much.
MAX_EXPANSION = 1100
WHERE = "the header"

N = TypeVar("N", bound=Network)


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
    arrays, header = collect(net, optimizer, what)
    header["parameters"] = {name: _describe(arrays[name]) for name in net.named_parameters()}
    header["buffers"] = {name: _describe(arrays[name]) for name in net.named_buffers()}
    arrays[HEADER] = np.frombuffer(json_text(header, what).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path, "checkpoint") as f:
        np.savez(f, **arrays)
    return path


def _describe(array: np.ndarray) -> dict[str, Any]:
    return {"shape": list(array.shape), "dtype": array.dtype.str}


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
        if dtype is None and not isinstance(backend, Backend):
            dtype = header["dtype"]
        target = get_backend(backend, device, dtype)
        target.require_data(f"loading checkpoint {str(path)!r}")
        net = build_network(npz, header["config"], header, target, network_class, WHERE)
        _check_listing(npz, header, "parameters", net.named_parameters())
        _check_listing(npz, header, "buffers", net.named_buffers())
        descrs = _descrs(header["dtype"])

        def read(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return npz.array(name, dtypes=descrs, shape=shape)

        names = set(npz.names) - {HEADER}
        load_arrays(npz, read, names, net, header.get("optimizer") is not None, WHERE)
        if not with_optimizer:
            return net
        return net, restore_optimizer(npz, read, names, header.get("optimizer"), net, WHERE)


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
        raise npz.error(f"the header is not a JSON object but {short(header)}")
    if header.get("format") != FORMAT:
        raise npz.error(f"the header's format is {short(header.get('format'))}, not {FORMAT!r}")
    version = header.get("version")
    if not is_int(version) or version < 1:
        raise npz.error(f"invalid format version {short(version)}")
    if version > VERSION:
        raise npz.error(f"format version {version} is newer than this bpx ({__version__}) reads (up to {VERSION}); "
                        "upgrade bpx")
    if not isinstance(header.get("config"), dict):
        raise npz.error("the header has no 'config' (architecture) object")
    if header.get("dtype") not in FLOAT_DTYPES:
        raise npz.error(f"the header's dtype {short(header.get('dtype'))} is not one of {FLOAT_DTYPES}")
    for key, check, what in (*FIELD_CHECKS,
                             ("parameters", _is_listing, "an object of {'shape', 'dtype'} entries"),
                             ("buffers", _is_listing, "an object of {'shape', 'dtype'} entries")):
        if key in header and not check(header[key]):
            raise npz.error(f"the header's {key!r} is {short(header[key])}, expected {what}")
    return header


def _check_budget(npz: NpzReader, header: dict[str, Any]) -> None:
    """Refuse an architecture whose parameters and buffers could not fit in the file (or are more than
    its members declare), before building it."""
    nbytes = declared_values(npz, header["config"], WHERE) * np.dtype(header["dtype"]).itemsize
    if nbytes > npz.budget:
        raise npz.error(f"the architecture declares {nbytes} bytes of parameters and buffers, more than a file of "
                        f"{npz.size} bytes can hold")
    stored = sum(npz.member_size(n) for n in npz.names if n != HEADER and not n.startswith(OPTIM))
    if nbytes > stored:
        raise npz.error(f"the architecture declares {nbytes} bytes of parameters and buffers, but the file's arrays "
                        f"hold at most {stored}")


def _check_listing(npz: NpzReader, header: dict[str, Any], key: str, items: dict[str, Any]) -> None:
    """The header's ``parameters``/``buffers`` listing (when present) must describe the network."""
    listing = header.get(key)
    if listing is None:
        return
    missing, extra = sorted(set(items) - set(listing)), sorted(set(listing) - set(items))
    if missing or extra:
        raise npz.error(f"the header's {key!r} do not match the architecture: missing {missing[:10]}, "
                        f"unexpected {extra[:10]}")
    descrs = _descrs(header["dtype"])
    for name, item in items.items():
        entry = listing[name]
        if entry["shape"] != list(item.shape) or entry["dtype"] not in descrs:
            raise npz.error(f"the header lists {name!r} as {short(entry)}, but the architecture and dtype need "
                            f"shape {list(item.shape)} of {header['dtype']}")


def _is_listing(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(e, dict) and isinstance(e.get("dtype"), str) and isinstance(e.get("shape"), list)
        and all(is_int(d) for d in e["shape"]) for e in v.values())
