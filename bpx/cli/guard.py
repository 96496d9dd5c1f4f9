"""How a command ends: its exit status, one-line errors, Ctrl-C without a traceback, and no
floating-point warning spam (divergence is reported once, by training's NaN guard)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

from ..errors import BpxError
from .options import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from .threads import mpi_world_size

#: Rank variables of MPI launchers (Open MPI, MPICH/Intel MPI, PMIx, MVAPICH).
MPI_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (a multi-line message is joined with spaces)."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


def who(prog: str) -> str:
    """``prog``, with ``(rank r of n)`` when this is one of several MPI ranks."""
    size = mpi_world_size()
    if size is None or size < 2:
        return prog
    rank = next((os.environ[v] for v in MPI_RANK_VARIABLES if os.environ.get(v, "").isdigit()), "?")
    return f"{prog} (rank {rank} of {size})"


def guarded(prog: str, run: Callable[[], int]) -> int:
    """Run a command and turn its failures into exit statuses: 2 for usage errors, 1 for every bpx
    error (one line on stderr, ``BPX_DEBUG=1`` shows the traceback), 130 for Ctrl-C."""
    try:
        with np.errstate(all="ignore"):
            return int(run() or 0)
    except KeyboardInterrupt:
        print(f"{who(prog)}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `bpx explain | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (BpxError, OSError) as err:
        if os.environ.get("BPX_DEBUG"):
            raise
        suffix = f" (see {prog} --help)" if isinstance(err, UsageError) else ""
        print(f"{who(prog)}: error: {one_line(err)}{suffix}", file=sys.stderr, flush=True)
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_ERROR
