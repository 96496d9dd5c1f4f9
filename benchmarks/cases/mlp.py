"""The MLP case: one MNIST epoch per timing, every implementation side by side.

Same data (resident on each implementation's device before timing), same float32 initial
weights, same host-drawn order per epoch; implementations alternate round-robin after one
warm-up epoch each. Reports median/min/max epoch seconds, samples/s, the ratio to the
hand-written NumPy loop and to the measured GEMM floor, and each implementation's last epoch
loss (they should agree: it checks that everyone trained the same network).
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

from .. import registry, report
from ..floor import measure_floor
from ..runner import Runner, Setup
from ..timing import QuietGate, Sample, Stats, round_robin
from ..workload import Workload, epoch_plan, initial_weights, load_dataset

#: Other processes' share of the allowed CPUs above which a run is flagged as contaminated.
FOREIGN_LIMIT = 0.10
#: Relative max/min spread of an implementation's epochs above which it is flagged as noisy.
SPREAD_LIMIT = 0.25
#: Relative difference of the last epoch's loss from the baseline's that is flagged.
LOSS_RTOL = 1e-3


def floor_library(backend: str, device: str | None) -> tuple[str, str | None]:
    """Which library measures the GEMM floor: NumPy on the CPU, else the device's library."""
    if backend == "cupy":
        return "cupy", registry.device_for(registry.IMPLEMENTATIONS["bpx-cupy"], "cupy", device)
    if backend in ("torch", "jax") and device not in (None, "cpu"):
        return backend, device
    return "numpy", None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the case with the parsed command-line options; print and write the report."""
    log = report.logger(args.quiet)
    loadavg_start = report.loadavg()
    data = load_dataset(args.samples, args.data_dir, prefer_mini=args.quick)
    selected, notes = registry.select(args.backend, args.device, args.impls)
    notes = [*data.notes, *notes]
    sizes = tuple(args.sizes)
    lib, lib_device = floor_library(args.backend, args.device)
    log(f"mlp: {'-'.join(map(str, sizes))}, {data.n} samples from {data.source}; "
        f"implementations: {', '.join(s.label for s in selected)}")
    blocks = []
    for batch in args.batch_sizes:
        workload = Workload(sizes, batch, args.lr, args.seed)
        weights = initial_weights(sizes, args.seed)
        runners: dict[str, Runner] = {}
        libraries: dict[str, tuple[str, str | None]] = {}
        for sel in selected:
            try:
                runners[sel.label] = sel.spec.make(Setup(data, weights, workload, sel.device))
                libraries[sel.label] = (sel.spec.library, sel.device)
            except Exception as err:  # a missing device or a broken backend must not stop the others
                notes.append(f"{sel.label} skipped at batch {batch}: {type(err).__name__}: {err}")
        floors = {}
        for key in dict.fromkeys([(lib, lib_device), *libraries.values(), ("numpy", None)]):
            if key == ("numpy", None) and floors:
                continue  # only the fallback when the device library's floor failed
            log(f"batch {batch}: measuring the GEMM floor ({key[0]}{'' if key[1] is None else ' ' + key[1]})")
            try:
                floors[key] = measure_floor(sizes, batch, data.n, key[0], key[1],
                                            min_time=0.005 if args.quick else 0.05, repeats=2 if args.quick else 5)
            except Exception as err:  # e.g. the device library is missing or has no device
                notes.append(f"batch {batch}: no GEMM floor for {key[0]} {key[1] or ''}: {type(err).__name__}: {err}")
        if (lib, lib_device) not in floors:
            lib, lib_device = "numpy", None
            floors.setdefault((lib, lib_device), measure_floor(sizes, batch, data.n, lib, lib_device))
        plans = [epoch_plan(args.seed, r, data.n) for r in range(args.warmup + args.repeats)]
        tasks = {label: (lambda r, runner=runner, plans=plans: runner.epoch(plans[r]))
                 for label, runner in runners.items()}
        log(f"batch {batch}: {args.warmup} warm-up + {args.repeats} timed round(s) of {len(tasks)} implementations")
        gate = QuietGate(args.quiet_below, max_wait=args.wait_quiet)
        samples = round_robin(tasks, args.repeats, args.warmup, log, gate)
        blocks.append(_summarise(batch, workload, data.n, floors, (lib, lib_device), samples, libraries, notes))
        del runners, tasks
        gc.collect()
    info = report.machine_info()
    info["loadavg"], info["loadavg_end"] = loadavg_start, info["loadavg"]
    payload = {
        "case": "mlp",
        "config": {"sizes": list(sizes), "samples": data.n, "batch_sizes": args.batch_sizes, "lr": args.lr,
                   "seed": args.seed, "repeats": args.repeats, "warmup": args.warmup, "backend": args.backend,
                   "device": args.device, "threads": args.threads, "quick": args.quick,
                   "wait_quiet": args.wait_quiet, "quiet_below": args.quiet_below,
                   "implementations": {s.label: s.spec.about for s in selected}},
        "data": {"source": data.source, "n": data.n, "bytes": data.nbytes},
        "machine": info,
        "batches": blocks,
        "notes": notes,
    }
    report.publish("mlp", payload, render(payload), args)
    return payload


def _summarise(batch: int, workload: Workload, n: int, floors: dict[tuple[str, str | None], Any],
               main: tuple[str, str | None], samples: dict[str, list[Sample]],
               libraries: dict[str, tuple[str, str | None]], notes: list[str]) -> dict[str, Any]:
    floor = floors[main]
    results: dict[str, Any] = {}
    for label in libraries:
        timed = samples[label]
        stats = Stats([s.seconds for s in timed])
        foreign = [s.foreign for s in timed if s.foreign is not None]
        results[label] = {
            "seconds": stats.as_dict(),
            "samples_per_s": n / stats.median,
            "spread": stats.spread,
            "warmup_seconds": [s.seconds for s in samples[f"{label} (warm-up)"]],
            "losses": [float(s.value) for s in timed],
            "foreign_cpu_share": max(foreign) if foreign else None,
            "foreign_cpu_shares": [s.foreign for s in timed],
            "waited_for_quiet_seconds": [s.waited for s in timed],
        }
    base = results.get(registry.BASELINE) or next((r for k, r in results.items()
                                                  if k.startswith(registry.BASELINE)), None)
    for label, r in results.items():
        r["vs_baseline"] = r["seconds"]["median"] / base["seconds"]["median"] if base else None
        r["vs_floor"] = r["seconds"]["median"] / floor.floor_seconds
        own = floors.get(libraries[label])
        r["vs_own_floor"] = r["seconds"]["median"] / own.floor_seconds if own else None
        r["gemm_library"] = libraries[label][0]
        if base and abs(r["losses"][-1] - base["losses"][-1]) > LOSS_RTOL * abs(base["losses"][-1]):
            notes.append(f"batch {batch}: {label}'s last epoch loss {r['losses'][-1]:.6g} differs from "
                         f"{registry.BASELINE}'s {base['losses'][-1]:.6g}: not the same computation?")
        if r["spread"] > SPREAD_LIMIT:
            notes.append(f"batch {batch}: {label}'s epochs spread {100 * r['spread']:.0f}% (max/min): noisy")
    shares = [s for r in results.values() if r["foreign_cpu_share"] is not None for s in [r["foreign_cpu_share"]]]
    if shares and max(shares) > FOREIGN_LIMIT:
        notes.append(f"batch {batch}: other processes used up to {100 * max(shares):.0f}% of the allowed CPUs during "
                     "a timed epoch: the absolute times may be contaminated (ratios suffer less)")
    return {"batch_size": batch, "steps": workload.n_batches(n), "floor": floor.as_dict(),
            "library_floors": {f"{lib}" + ("" if dev is None else f" {dev}"): f.as_dict()
                               for (lib, dev), f in floors.items()},
            "results": results}


def render(payload: dict[str, Any]) -> str:
    """The Markdown report of :func:`run`'s payload."""
    cfg, info = payload["config"], payload["machine"]
    threads = (f"{cfg['threads']} (pinned)" if cfg["threads"] else
               f"library default ({info['allowed_cpus']} CPUs)")
    lines = [
        "# bpx benchmark: MLP training epoch",
        "",
        f"{'-'.join(map(str, cfg['sizes']))} MLP (ReLU), softmax cross-entropy, plain SGD lr {cfg['lr']:g}, float32; "
        f"{payload['data']['n']} samples per epoch ({payload['data']['source']}); median of {cfg['repeats']} "
        f"round-robin epochs after {cfg['warmup']} warm-up; same weights, data and batch order for all; "
        f"threads: {threads}.",
        "",
        *report.machine_summary(info),
    ]
    for block in payload["batches"]:
        fl = block["floor"]
        lines += [
            "",
            f"## batch {block['batch_size']} ({block['steps']} steps per epoch)",
            "",
            f"GEMM floor: {fl['epoch_gflop']:.1f} GFLOP per epoch at {fl['best_gflops']:.0f} GFLOP/s (best "
            f"{fl['library']} rate, {fl['best_shape']}) = **{fl['floor_seconds']:.3f} s**; at each shape's own "
            f"measured rate the step GEMMs take {fl['shape_floor_seconds']:.3f} s.",
        ]
        others = [f"{name} {f['best_gflops']:.0f} GFLOP/s → {f['floor_seconds']:.3f} s"
                  for name, f in block["library_floors"].items() if name != fl["library"]]
        if others:
            lines += ["", "Own-library GEMM floors (the library each implementation multiplies with): "
                      + "; ".join(others) + "."]
        lines.append("")
        rows = []
        for label, r in block["results"].items():
            s = r["seconds"]
            rows.append([label, f"{s['median']:.4f}", f"{s['min']:.4f}", f"{s['max']:.4f}",
                         f"{r['samples_per_s']:,.0f}", _ratio(r["vs_baseline"]), _ratio(r["vs_floor"]),
                         _ratio(r["vs_own_floor"]),
                         "–" if r["foreign_cpu_share"] is None else f"{100 * r['foreign_cpu_share']:.0f}%",
                         f"{r['losses'][-1]:.5f}"])
        headers = ["implementation", "median s", "min s", "max s", "samples/s", f"÷ {registry.BASELINE}",
                   "÷ GEMM floor", "÷ own floor", "other load", "last loss"]
        lines.append(report.table(headers, rows))
    lines += ["", "Ratios are median ÷ median (below 1 = faster than the reference). *GEMM floor*: NumPy's (or the "
              "device library's) best rate; *own floor*: the floor at the best rate of the library the "
              "implementation's GEMMs run in (PyTorch's MKL can be much slower than OpenBLAS, e.g. on AMD CPUs). "
              "*other load*: the largest "
              "share of this process's CPUs that other processes used during one of its timed epochs. "
              "*last loss*: mean training loss of the last timed epoch (all should agree)."]
    if payload["notes"]:
        lines += ["", "Notes:", *(f"- {n}" for n in payload["notes"])]
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"
