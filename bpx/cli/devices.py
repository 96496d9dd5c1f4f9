"""``--backend``/``--device``/``--dtype`` to a :class:`bpx.Backend`, with errors that name the flag."""

from __future__ import annotations

import argparse

from ..backend import Backend, get_backend
from ..errors import BackendError, BpxError
from .options import CLIError


def resolve_backend(args: argparse.Namespace, dtype: str | None = None, what: str = "training") -> Backend:
    """The backend asked for on the command line. Every device that cannot be used is a
    :class:`CLIError` naming ``--device`` (or ``--backend``): a missing or unknown device, and
    PyTorch's ``meta`` device, which holds shapes but no values to train on."""
    try:
        backend = get_backend(args.backend, args.device, dtype)
    except BackendError as err:
        flag = f"--device {args.device}" if args.device is not None else f"--backend {args.backend or 'numpy'}"
        hint = " (choose the backend with --backend, e.g. --backend torch)" if args.backend is None and \
            args.device is not None else ""
        raise CLIError(f"{flag}: {err}{hint}") from None
    if not backend.holds_data:
        raise CLIError(f"--device {args.device}: PyTorch's 'meta' device holds shapes but no values, so there "
                       f"is nothing to compute {what} with; use cpu or cuda:N")
    return backend


def checkpoint_dtype(path: str) -> str | None:
    """The dtype saved in the checkpoint at ``path`` (``None`` when it cannot be read: loading it
    reports why)."""
    from ..io.checkpoint import read_header

    try:
        return str(read_header(path)["dtype"])
    except (BpxError, OSError):
        return None
