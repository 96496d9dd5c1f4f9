"""Output paths checked before any work: a bad ``--save`` or ``--plot`` fails at once, naming the
option and the path, instead of after training with a message about a temporary file."""

from __future__ import annotations

from pathlib import Path

from ..errors import BpxError
from .options import CLIError


def check_checkpoint_path(path: str, flag: str = "--save") -> None:
    """The checkpoint ``path`` (``.npz`` appended when missing) can be written."""
    from ..host.files import check_writable
    from ..io.checkpoint import checkpoint_path

    try:
        check_writable(checkpoint_path(path), "checkpoint")
    except (BpxError, ValueError) as err:
        raise CLIError(f"{flag} {path}: {err}") from None


def check_plot_path(path: str, flag: str = "--plot") -> None:
    """matplotlib is installed, the folder of ``path`` is writable and its suffix is a format
    matplotlib writes (none: PNG)."""
    from ..host.files import check_writable
    from ..plotting import require_matplotlib

    try:
        plt = require_matplotlib()
        check_writable(path, "plot")
    except BpxError as err:
        raise CLIError(f"{flag} {path}: {err}") from None
    suffix = Path(path).suffix.lstrip(".").lower()
    fig = plt.figure()
    try:
        formats = fig.canvas.get_supported_filetypes()
    finally:
        plt.close(fig)
    if suffix and suffix not in formats:
        raise CLIError(f"{flag} {path}: matplotlib cannot write .{suffix} files; use one of "
                       f"{', '.join('.' + f for f in sorted(formats))}")
