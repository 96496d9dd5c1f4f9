"""The round-robin timer, summary statistics and a measure of other processes' CPU use.

Implementations are interleaved (A, B, C, then B, C, A, ...) rather than run back to back, so
that slow drifts of a shared, noisy machine spread over all of them; each gets the same
warm-up first. While timing, :class:`ForeignLoad` reads ``/proc/stat`` to estimate how much CPU
*other* processes took on the CPUs this process may use, so contaminated runs can be flagged.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    """One timed call: wall seconds, what the call returned, the share of the allowed CPUs
    other processes used meanwhile (``None`` when unknown) and how long the call waited for
    the machine to become quiet before it started."""

    seconds: float
    value: Any = None
    foreign: float | None = None
    waited: float = 0.0


@dataclass
class Stats:
    """Median, minimum and maximum of timed samples."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def spread(self) -> float:
        """``max / min`` − 1: how noisy the samples are."""
        return self.max / self.min - 1.0 if self.min > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "samples": list(self.samples)}


Task = Callable[[int], Any]


@dataclass(frozen=True)
class QuietGate:
    """Before each call, wait (up to ``max_wait`` seconds) until other processes use
    less than ``below`` of this process's CPUs over a ``window``-second look. ``max_wait=0``
    disables the wait."""

    below: float = 0.2
    window: float = 0.25
    max_wait: float = 0.0

    def wait(self) -> float:
        """Block until quiet (or ``max_wait``); return the seconds waited."""
        if self.max_wait <= 0:
            return 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < self.max_wait:
            load = ForeignLoad()
            time.sleep(self.window)
            share = load.share()
            if share is None or share < self.below:
                break
        return time.perf_counter() - start


def round_robin(tasks: dict[str, Task], rounds: int, warmup: int = 1,
                progress: Callable[[str], None] | None = None, gate: QuietGate | None = None
                ) -> dict[str, list[Sample]]:
    """Call every task once per round for ``warmup`` untimed-for-the-statistics rounds, then
    ``rounds`` timed rounds, rotating which task goes first. A task gets the round index
    (warm-up rounds are ``0 .. warmup-1``). Returns each task's timed samples; the warm-up
    samples are returned under the key ``"<name> (warm-up)"``. ``gate`` waits for a quiet
    machine before each call."""
    names = list(tasks)
    out: dict[str, list[Sample]] = {name: [] for name in names}
    out.update({f"{name} (warm-up)": [] for name in names})
    for r in range(warmup + rounds):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            waited = gate.wait() if gate is not None else 0.0
            sample = timed(tasks[name], r)
            sample.waited = waited
            key = name if r >= warmup else f"{name} (warm-up)"
            out[key].append(sample)
            if progress is not None:
                tag = "warm-up" if r < warmup else f"round {r - warmup + 1}/{rounds}"
                other = "" if sample.foreign is None else f"  other load {100 * sample.foreign:3.0f}%"
                wait = f"  (waited {waited:.1f} s for quiet)" if waited >= 0.5 else ""
                progress(f"  {tag:>12}  {name:<28} {sample.seconds:9.4f} s{other}{wait}")
    return out


def timed(task: Task, index: int) -> Sample:
    """Time one call of ``task(index)`` (garbage collected just before, outside the clock)."""
    gc.collect()
    load = ForeignLoad()
    start = time.perf_counter()
    value = task(index)
    seconds = time.perf_counter() - start
    return Sample(seconds, value, load.share())


class ForeignLoad:
    """CPU time other processes used on this process's allowed CPUs since construction, as a
    share of those CPUs' capacity (0 = the machine was ours, 1 = fully used by others).
    The kernel counts in ticks (usually 10 ms), so intervals shorter than ``MIN_WALL`` give None."""

    MIN_WALL = 0.1

    def __init__(self) -> None:
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        """(busy seconds on our CPUs, own CPU seconds, wall time), or None if unreadable."""
        try:
            with open("/proc/stat") as f:
                lines = f.readlines()
        except OSError:
            return None
        wanted = {f"cpu{i}" for i in self.cpus}
        busy = 0
        for line in lines:
            parts = line.split()
            if parts and parts[0] in wanted:
                values = [int(v) for v in parts[1:]]
                idle = values[3] + (values[4] if len(values) > 4 else 0)
                busy += sum(values[:8]) - idle  # user..steal; guest time is already in user
        own = os.times()
        return busy / self.hz, own.user + own.system, time.perf_counter()

    def share(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or not self.cpus:
            return None
        busy, own, wall = (b - a for a, b in zip(self.start, end, strict=True))
        if wall < self.MIN_WALL:
            return None
        return max(0.0, min(1.0, (busy - own) / (wall * len(self.cpus))))
