"""The memory case: peak memory of one MNIST ``fit`` epoch, measured in fresh subprocesses.

Each measurement runs in its own interpreter (``python -m benchmarks.cases.memory --child``):
it loads the data on the host, builds the network, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``, Linux), runs ``net.fit`` for one epoch on the host arrays, exactly as
a user would, and reports the process's peak RSS (``ru_maxrss``), the rise of the peak during
``fit`` and, in a separate run, the peak of traced (NumPy/Python) allocations with
``tracemalloc``. These are compared with the size of the dataset and of the parameters.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from .. import report
from ..runner import Setup
from ..workload import ROOT, Workload, epoch_plan, initial_weights, load_dataset

MIB = 1 << 20


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure each implementation in a child process; print and write the report."""
    log = report.logger(args.quiet)
    impls = ["numpy-hand", "bpx-numpy"]
    others = ["torch", "jax"] if args.backend == "cpu" else [] if args.backend == "numpy" else [args.backend]
    notes: list[str] = []
    for lib in others:
        if importlib.util.find_spec(lib) is None:
            notes.append(f"bpx-{lib} skipped: {lib} is not installed")
        else:
            impls.append(f"bpx-{lib}")
    batch = args.batch_sizes[0]
    results: dict[str, Any] = {}
    for impl in impls:
        modes = ["rss", "tracemalloc"] if impl in ("numpy-hand", "bpx-numpy") else ["rss"]
        for mode in modes:
            log(f"memory: {impl} ({mode})")
            cmd = [sys.executable, "-m", "benchmarks.cases.memory", "--child", mode, "--impl", impl,
                   "--samples", str(args.samples), "--batch-size", str(batch), "--sizes",
                   ",".join(map(str, args.sizes)), "--lr", str(args.lr), "--seed", str(args.seed)]
            if args.device and impl != "numpy-hand":
                cmd += ["--device", args.device]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            if args.quick:
                cmd.append("--quick")
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                notes.append(f"{impl} ({mode}) failed: {proc.stderr.strip().splitlines()[-1:]} ")
                continue
            results.setdefault(impl, {}).update(json.loads(proc.stdout.strip().splitlines()[-1]))
    payload = {
        "case": "memory",
        "config": {"sizes": list(args.sizes), "samples": args.samples, "batch_size": batch, "lr": args.lr,
                   "backend": args.backend, "device": args.device, "quick": args.quick},
        "machine": report.machine_info(),
        "results": results,
        "notes": notes,
    }
    report.publish("memory", payload, render(payload), args)
    return payload


def render(payload: dict[str, Any]) -> str:
    cfg = payload["config"]
    rows = []
    data_bytes = params_bytes = None
    for impl, r in payload["results"].items():
        data_bytes, params_bytes = r.get("dataset_bytes"), r.get("params_bytes")
        rise = r.get("fit_peak_rise_bytes")
        traced = r.get("tracemalloc_peak_bytes")
        device = r.get("device_peak_bytes")
        rows.append([impl, _mib(r.get("ru_maxrss_bytes")), _mib(r.get("rss_before_fit_bytes")),
                     _mib(rise) if rise is not None else "–", _mib(traced) if traced is not None else "–",
                     _mib(device) if device is not None else "–",
                     f"{r['fit_seconds']:.2f}" if "fit_seconds" in r else "–"])
    lines = [
        "# bpx benchmark: peak memory of one training epoch",
        "",
        f"{'-'.join(map(str, cfg['sizes']))} MLP, {cfg['samples']} samples, batch {cfg['batch_size']}; each row is a "
        "fresh process that loads the data on the host, then runs one epoch (bpx: `net.fit(x, y, ...)` on the host "
        "arrays; numpy-hand: its loop).",
        "",
        *report.machine_summary(payload["machine"]),
        "",
        report.table(["implementation", "peak RSS MiB", "RSS before fit MiB", "peak rise in fit MiB",
                      "tracemalloc peak in fit MiB", "GPU peak MiB", "epoch s"], rows),
        "",
        f"Dataset (float32 inputs + int64 labels): {_mib(data_bytes)} MiB; parameters: {_mib(params_bytes, 2)} MiB. "
        "*peak rise in fit*: the peak RSS during the epoch minus the RSS just before it (the kernel's peak mark is "
        "reset first; '–' where that is impossible). *tracemalloc peak*: the largest total of traced Python/NumPy "
        "allocations alive during the epoch (PyTorch/JAX allocations are not traced). RSS is host memory; "
        "*GPU peak*: PyTorch-CUDA's peak allocation or CuPy's memory-pool size.",
    ]
    if payload["notes"]:
        lines += ["", "Notes:", *(f"- {n}" for n in payload["notes"])]
    return "\n".join(lines)


def _mib(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value / MIB:.{digits}f}"


# ---------------------------------------------------------------------- child process
def _status(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm, rss = _status("VmHWM"), _status("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss * 1.01 + 4096


def child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=("rss", "tracemalloc"), required=True)
    p.add_argument("--impl", required=True)
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--sizes", required=True)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    import bpx

    sizes = tuple(int(v) for v in a.sizes.split(","))
    data = load_dataset(a.samples, a.data_dir, prefer_mini=a.quick)
    workload = Workload(sizes, a.batch_size, a.lr, a.seed)
    setup = Setup(data, initial_weights(sizes, a.seed), workload, a.device)
    plan = epoch_plan(a.seed, 0, data.n)
    if a.impl == "numpy-hand":
        from ..peers import NumpyHand

        runner = NumpyHand(setup)

        def epoch() -> None:
            runner.epoch(plan)
    else:
        from ..bpx_runners import build_network

        net = build_network(setup, a.impl.removeprefix("bpx-"), a.device)

        def epoch() -> None:
            net.fit(data.x, data.y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=a.lr), epochs=1,
                    batch_size=a.batch_size, seed=plan.seed, verbose=0)
    backend = "numpy" if a.impl == "numpy-hand" else a.impl.removeprefix("bpx-")
    _reset_device_peak(backend)
    gc.collect()
    out: dict[str, Any] = {"dataset_bytes": data.nbytes,
                           "params_bytes": sum(w.nbytes + b.nbytes for w, b in setup.weights)}
    reset = _reset_peak()
    rss_before = _status("VmRSS")
    if a.child == "tracemalloc":
        tracemalloc.start()
    start = time.perf_counter()
    epoch()
    seconds = time.perf_counter() - start
    if a.child == "tracemalloc":
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        hwm = _status("VmHWM")
        out.update({"ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                    "rss_before_fit_bytes": rss_before, "fit_seconds": seconds,
                    "fit_peak_rise_bytes": hwm - rss_before if reset and hwm and rss_before else None,
                    "pid": os.getpid(), "device_peak_bytes": _device_peak(backend)})
    print(json.dumps(out))


def _reset_device_peak(backend: str) -> None:
    """Reset the GPU allocator's peak statistics (PyTorch CUDA), where there is one."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def _device_peak(backend: str) -> int | None:
    """Peak GPU memory of the run: PyTorch's ``max_memory_allocated`` or the size CuPy's memory
    pool grew to (it keeps freed blocks); None on the CPU."""
    if backend == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
    if backend == "cupy":
        import cupy

        return int(cupy.get_default_memory_pool().total_bytes())
    return None


if __name__ == "__main__":
    child(sys.argv[1:])
