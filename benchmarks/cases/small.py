"""The small case: microseconds per training step of the 2-2-2 worked example.

Measures the per-step overhead of bpx where there is no arithmetic to hide it: the worked
example network (``bpx.worked_example()``: 2-2-2 sigmoid, half squared error, SGD lr 0.5,
frozen biases, float64), stepped with ``bpx.training.train_step`` on prepared device arrays and with the
public ``net.train_step`` on host lists, against a hand-written NumPy step and PyTorch autograd.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

import bpx
from bpx import architectures as toy
from bpx.training import train_step

from .. import report
from ..peers import numpy_small_step, torch_small_step
from ..timing import QuietGate, Stats, round_robin

BASELINE = "numpy-hand step"


def steppers() -> tuple[dict[str, Callable[[], Any]], list[str]]:
    """One zero-argument step function per implementation, and notes on those skipped."""
    x = np.asarray(toy.WORKED_INPUTS, dtype=np.float64)
    t = np.asarray(toy.WORKED_TARGETS, dtype=np.float64)
    w = toy.WORKED_WEIGHTS
    weights = (np.asarray(toy.textbook_matrix(w[:4], 2, 2)), np.asarray(toy.textbook_matrix(w[4:], 2, 2)))
    out: dict[str, Callable[[], Any]] = {BASELINE: numpy_small_step(weights, toy.WORKED_BIASES, x, t, toy.WORKED_LR)}
    notes: list[str] = []

    def bpx_prepared(backend: str) -> Callable[[], Any]:
        net = toy.worked_example(backend=backend)
        loss, opt = bpx.HalfSquaredError(), bpx.SGD(lr=toy.WORKED_LR)
        xd, td = net.prepare_inputs(toy.WORKED_INPUTS), net.prepare_targets(toy.WORKED_TARGETS, loss)
        return lambda: train_step(net, xd, td, loss, opt).loss

    def bpx_public(backend: str) -> Callable[[], Any]:
        net = toy.worked_example(backend=backend)
        loss, opt = bpx.HalfSquaredError(), bpx.SGD(lr=toy.WORKED_LR)
        return lambda: net.train_step(toy.WORKED_INPUTS, toy.WORKED_TARGETS, loss, opt)

    out["bpx-numpy train_step (device arrays)"] = bpx_prepared("numpy")
    out["bpx-numpy train_step (host lists)"] = bpx_public("numpy")
    if importlib.util.find_spec("torch") is not None:
        out["torch-autograd step"] = torch_small_step(weights, toy.WORKED_BIASES, x, t, toy.WORKED_LR)
        out["bpx-torch train_step (device arrays)"] = bpx_prepared("torch")
    else:
        notes.append("PyTorch is not installed: torch-autograd and bpx-torch skipped")
    return out, notes


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` steps per round, round-robin, for ``args.repeats`` rounds."""
    log = report.logger(args.quiet)
    steps = args.steps
    funcs, notes = steppers()
    first_loss = {name: float(bpx.to_host(f())) for name, f in funcs.items()}  # the textbook 0.298371109
    tasks = {name: (lambda r, f=f: _loop(f, steps)) for name, f in funcs.items()}
    log(f"small: {steps} steps per round, {args.warmup} warm-up + {args.repeats} timed round(s)")
    gate = QuietGate(args.quiet_below, max_wait=args.wait_quiet)
    samples = round_robin(tasks, args.repeats, args.warmup, log, gate)
    results: dict[str, Any] = {}
    for name in funcs:
        stats = Stats([s.seconds * 1e6 / steps for s in samples[name]])
        results[name] = {"us_per_step": stats.as_dict(), "first_loss": first_loss[name]}
    base = results[BASELINE]["us_per_step"]["median"]
    for r in results.values():
        r["vs_baseline"] = r["us_per_step"]["median"] / base
    payload = {
        "case": "small",
        "config": {"network": "2-2-2 sigmoid worked example, half squared error, SGD lr 0.5, float64",
                   "steps_per_round": steps, "repeats": args.repeats, "warmup": args.warmup, "quick": args.quick,
                   "threads": args.threads},
        "machine": report.machine_info(),
        "results": results,
        "notes": notes,
    }
    report.publish("small", payload, render(payload), args)
    return payload


def _loop(step: Callable[[], Any], steps: int) -> None:
    for _ in range(steps):
        step()


def render(payload: dict[str, Any]) -> str:
    cfg = payload["config"]
    rows = []
    for name, r in payload["results"].items():
        s = r["us_per_step"]
        rows.append([name, f"{s['median']:.1f}", f"{s['min']:.1f}", f"{s['max']:.1f}", f"{r['vs_baseline']:.2f}×",
                     f"{r['first_loss']:.9f}"])
    lines = [
        "# bpx benchmark: per-step overhead (2-2-2 worked example)",
        "",
        f"{cfg['network']}; µs per step, median of {cfg['repeats']} round-robin rounds of "
        f"{cfg['steps_per_round']} steps after {cfg['warmup']} warm-up.",
        "",
        *report.machine_summary(payload["machine"]),
        "",
        report.table(["implementation", "median µs", "min µs", "max µs", f"÷ {BASELINE}", "first-step loss"], rows),
        "",
        "The first-step loss is the worked example's E_total before the update (0.298371109 in the textbook).",
    ]
    if payload["notes"]:
        lines += ["", "Notes:", *(f"- {n}" for n in payload["notes"])]
    return "\n".join(lines)
