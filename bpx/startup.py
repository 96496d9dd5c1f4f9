"""Ctrl-C while the ``bpx`` command is still loading its libraries ends quietly.

The command's own Ctrl-C handling (:mod:`bpx.cli.guard`) starts once NumPy and the rest are
imported, a second or so after launch; a Ctrl-C before that would print a traceback from deep
inside an import. When the process was started as the command (``bpx ...``, or ``python -m bpx``,
during whose package import ``sys.argv[0]`` is ``"-m"``) and SIGINT has Python's default handler,
:func:`quiet_until_ready` installs one that prints ``bpx: interrupted`` and exits with status 130
at once; :func:`ready`, called first by :func:`bpx.cli.main`, puts the default back. ``bpx``
imports this module first, which calls :func:`quiet_until_ready`. Importing bpx as a library (a
script, a notebook, pytest) changes nothing. Standard library only: it runs before anything else
is imported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

#: The exit status of an interrupted command (128 + SIGINT), as the shell reports it.
EXIT_INTERRUPTED = 130


def started_as_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` (``sys.argv``) is that of the ``bpx`` console script or ``python -m bpx``."""
    first = argv[0] if argv else ""
    return first == "-m" or os.path.basename(first) in ("bpx", "bpx.exe")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"bpx: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def quiet_until_ready() -> None:
    """For the command only: make Ctrl-C exit quietly (status 130) until :func:`ready`."""
    if (started_as_command(sys.argv) and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _interrupted)


def ready() -> None:
    """Give Ctrl-C back to Python's default handler (``KeyboardInterrupt``), if it was ours."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


quiet_until_ready()
