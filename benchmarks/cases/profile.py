"""The profile case: where one bpx epoch on NumPy spends its time beyond the GEMMs.

Profiles one epoch of the train-step loop (the core's hot path) and one epoch of ``fit`` with
``cProfile`` (deterministic; inflates small Python calls) and, when it is installed, with
``pyinstrument`` (sampling; closer to real proportions), after a warm-up epoch. Note that the
time of NumPy operators (``@``, ``+``, ...) is charged to the Python function that uses them.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import pstats
import time
from typing import Any

from .. import report
from ..bpx_runners import BpxFit, BpxLoop
from ..peers import NumpyHand
from ..runner import Runner, Setup
from ..workload import Workload, epoch_plan, initial_weights, load_dataset

TOP = 25


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Profile bpx-numpy's loop and fit at the first batch size; print and write the report."""
    log = report.logger(args.quiet)
    data = load_dataset(args.samples, args.data_dir, prefer_mini=args.quick)
    sizes, batch = tuple(args.sizes), args.batch_sizes[0]
    setup = Setup(data, initial_weights(sizes, args.seed), Workload(sizes, batch, args.lr, args.seed))
    runners: dict[str, Runner] = {"numpy-hand": NumpyHand(setup), "bpx-numpy": BpxLoop(setup, "numpy"),
                                  "bpx-numpy-fit": BpxFit(setup, "numpy")}
    sections: dict[str, Any] = {}
    for name, runner in runners.items():
        log(f"profile: {name}")
        runner.epoch(epoch_plan(args.seed, 0, data.n))  # warm-up
        start = time.perf_counter()
        runner.epoch(epoch_plan(args.seed, 1, data.n))
        plain = time.perf_counter() - start
        plan = epoch_plan(args.seed, 2, data.n)
        profiler = cProfile.Profile()
        profiler.enable()
        runner.epoch(plan)
        profiler.disable()
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer).strip_dirs()
        stats.sort_stats("tottime").print_stats(TOP)
        section = {"epoch_seconds_unprofiled": plain, "cprofile": _trim(buffer.getvalue()),
                   "top": _top(stats)}
        if importlib.util.find_spec("pyinstrument") is not None and name != "numpy-hand":
            from pyinstrument import Profiler

            plan = epoch_plan(args.seed, 3, data.n)
            sampler = Profiler(interval=0.0005)
            sampler.start()
            runner.epoch(plan)
            sampler.stop()
            section["pyinstrument"] = sampler.output_text(unicode=True, color=False, show_all=False)
        sections[name] = section
    payload = {"case": "profile",
               "config": {"sizes": list(sizes), "samples": data.n, "batch_size": batch, "quick": args.quick},
               "data": {"source": data.source}, "machine": report.machine_info(), "profiles": sections}
    report.publish("profile", payload, render(payload), args)
    return payload


def _trim(text: str) -> str:
    lines = text.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    head = [line for line in lines[:start] if "function calls" in line]
    return "\n".join(head + lines[start:])


def _top(stats: pstats.Stats) -> list[dict[str, Any]]:
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{filename}:{line}({func})", "ncalls": nc, "primitive_calls": cc,
                     "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: r["tottime"], reverse=True)
    return rows[:TOP]


def render(payload: dict[str, Any]) -> str:
    cfg = payload["config"]
    lines = ["# bpx benchmark: profile of one NumPy epoch", "",
             f"{'-'.join(map(str, cfg['sizes']))} MLP, {cfg['samples']} samples ({payload['data']['source']}), "
             f"batch {cfg['batch_size']}.", "", *report.machine_summary(payload["machine"])]
    for name, section in payload["profiles"].items():
        lines += ["", f"## {name}: {section['epoch_seconds_unprofiled']:.4f} s per epoch unprofiled", "",
                  "cProfile, by own time:", "", "```", section["cprofile"], "```"]
        if "pyinstrument" in section:
            lines += ["", "pyinstrument (sampling):", "", "```", section["pyinstrument"].strip(), "```"]
    return "\n".join(lines)
