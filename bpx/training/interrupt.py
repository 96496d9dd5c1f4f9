"""Ctrl-C during training: the first SIGINT asks the loop to stop at the next batch boundary;
a second one interrupts at once (``KeyboardInterrupt``). Only the main thread can install signal
handlers; where SIGINT is ignored (a background job), it stays ignored."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any


class StopFlag:
    """Set by the first Ctrl-C; ``fit`` polls it between batches."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def stop_on_sigint(flag: StopFlag, quiet: bool = False) -> Iterator[None]:
    """Install the two-stage Ctrl-C handler for the duration of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        if not quiet:
            print("\nInterrupted: stopping after this batch (Ctrl-C again to stop at once)", file=sys.stderr,
                  flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
