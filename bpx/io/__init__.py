"""Files that hold networks: checkpoints (``.npz`` with a JSON header, or safetensors with the same
metadata), written atomically and read as untrusted input.

:func:`save` and :func:`load` pick the format: ``save`` by ``format=`` or the path's suffix,
``load`` by the file's first bytes (an ``.npz`` is a zip archive).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from ..errors import BpxValueError
from ..nn.network import Network
from ..optim.optimizers import Optimizer
from .checkpoint import FORMAT, VERSION, checkpoint_path, load_checkpoint, read_header, save_checkpoint
from .safetensors import is_safetensors, load_safetensors, save_safetensors

N = TypeVar("N", bound=Network)
FORMATS = ("npz", "safetensors")


def save(net: Network, path: str | os.PathLike[str], optimizer: Optimizer | None = None,
         format: str | None = None) -> Path:
    """Write ``net`` (and ``optimizer``) to ``path`` as ``format`` (``"npz"`` or ``"safetensors"``;
    ``None``: safetensors for a ``.safetensors`` path, else ``.npz``). Returns the path written."""
    if format is None:
        format = "safetensors" if os.fspath(path).endswith(".safetensors") else "npz"
    if format == "safetensors":
        return save_safetensors(net, path, optimizer)
    if format != "npz":
        raise BpxValueError(f"format must be one of {FORMATS}, got {format!r}")
    return save_checkpoint(net, path, optimizer)


def load(path: str | os.PathLike[str], backend: Any = None, device: Any = None, dtype: Any = None, *,
         with_optimizer: bool = False, network_class: type[N] = Network) -> N | tuple[N, Optimizer]:  # type: ignore[assignment]
    """Rebuild the network saved at ``path`` (either format) as ``network_class``; see
    :func:`bpx.io.checkpoint.load_checkpoint` for the arguments."""
    reader = load_safetensors if is_safetensors(path) else load_checkpoint
    return reader(path, backend, device, dtype, with_optimizer=with_optimizer, network_class=network_class)


__all__ = ["FORMAT", "FORMATS", "VERSION", "checkpoint_path", "load", "load_checkpoint", "load_safetensors",
           "read_header", "save", "save_checkpoint", "save_safetensors"]
