"""Running the ``bpx`` command as a user does: ``python -m bpx ...`` in a real subprocess, with
its output on pipes (not a terminal), and Ctrl-C as a real SIGINT sent at a known moment."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Thread variables removed from the children's environment, so that tests see bpx's own choices.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
MPI_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                 "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_RANK")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``bpx`` child: this checkout first on the path, no thread or MPI
    variables, no backend override, no debug tracebacks."""
    env = {k: v for k, v in os.environ.items()
           if k not in THREAD_VARIABLES + MPI_VARIABLES + ("BPX_BACKEND", "BPX_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def run_bpx(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120,
            launcher: tuple[str, ...] = ()) -> Result:
    """Run ``[launcher] python -m bpx ARGS`` to completion (``launcher``: e.g. ``mpiexec -n 2``)."""
    done = subprocess.run([*launcher, sys.executable, "-m", "bpx", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=child_env(env), timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(done.returncode, done.stdout, done.stderr)


class Running:
    """A ``python -m bpx`` child whose stderr is read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path | None, env: dict[str, str] | None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bpx", *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=cwd, env=child_env(env),
                                     stdin=subprocess.DEVNULL)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float = 90) -> str:
        """Block until a stderr line contains ``marker``; return that line."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no line with {marker!r} within {timeout} s; stderr so far:\n{''.join(self.err)}")
            if line is None:
                pytest.fail(f"bpx ended before printing {marker!r}; stderr:\n{''.join(self.err)}")
            self.err.append(line)
            if marker in line:
                return line

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the child."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 120) -> Result:
        """Wait for the end; all of stdout and stderr."""
        assert self.proc.stdout is not None
        try:
            out = self.proc.stdout.read()
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(timeout=10)
        while True:
            line = self.lines.get_nowait() if not self.lines.empty() else None
            if line is None:
                break
            self.err.append(line)
        return Result(self.proc.returncode, out, "".join(self.err))


@pytest.fixture
def bpx_run():
    """``bpx_run(*args, cwd=..., env=..., launcher=...)``: run the command to completion, a :class:`Result`."""
    return run_bpx


@pytest.fixture
def bpx_start():
    """``bpx_start(*args, cwd=..., env=...)``: start the command, a :class:`Running` to steer."""
    started: list[Running] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Running:
        started.append(Running(list(args), cwd, env))
        return started[-1]

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
