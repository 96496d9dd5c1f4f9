"""The opcount case: tensor operations per training step, counted with PyTorch's dispatch mode.

On a GPU every array operation is a kernel launch costing 8–25 µs of host time, so a small
network's step is launch-bound: what matters is how many operations a step dispatches. This
case runs bpx on the PyTorch backend (CPU) under ``torch.utils._python_dispatch.TorchDispatchMode``
and counts every ATen operation:

* per ``fit`` step: the difference between a fit of 2N and of N batches, divided by N (so the
  per-call work of ``fit`` — moving the data, snapshots, read-backs — is not counted per step);
* per ``train_step``: one call of :func:`bpx.training.train_step` on device arrays;
* per update: ``optimizer.update`` for networks of 1 to 8 hidden layers (the same count: the
  update works on one flat buffer).

Operations are split into kernels (they launch work) and views (``view``, ``permute``, ``slice``
... only change metadata). Next to the counts, the case times one ``fit`` epoch per optimizer on
this CPU and estimates the launch cost on a GPU (operations × 8 and × 25 µs).

The counts model the step a GPU runs, so the CPU-only layout of narrow products
(``Backend.narrow_transposed``: the 256-10 layer's forward product and weight gradient computed
transposed) is switched off for them; one more row counts the fit step as the CPU runs it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import time
from typing import Any

import numpy as np

from .. import report

#: ATen operations that only create views or wrap values (no kernel launch on a GPU).
VIEW_OPS = frozenset({"view", "permute", "t", "transpose", "unsqueeze", "squeeze", "slice", "select", "expand",
                      "_unsafe_view", "as_strided", "alias", "detach", "lift_fresh", "_reshape_alias", "reshape",
                      "unbind", "split", "unflatten", "numpy_T", "mT"})


def _counter() -> Any:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: collections.Counter[str] = collections.Counter()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    return Count()


def _split(ops: collections.Counter[str], per: float) -> dict[str, Any]:
    total = sum(ops.values()) / per
    kernels = sum(v for k, v in ops.items() if k not in VIEW_OPS) / per
    top = sorted(((k, v / per) for k, v in ops.items()), key=lambda kv: -kv[1])
    return {"total": round(total, 2), "kernels": round(kernels, 2), "views": round(total - kernels, 2),
            "by_op": {k: round(v, 2) for k, v in top}}


def _optimizers() -> dict[str, Any]:
    import bpx

    return {"SGD momentum 0.9": lambda: bpx.SGD(lr=0.01, momentum=0.9), "Adam": lambda: bpx.Adam(lr=0.001)}


def torch_backend(cpu_layout: bool = False) -> Any:
    """The PyTorch CPU backend, by default with the layout a GPU uses (no narrow transposes)."""
    import bpx

    backend = bpx.get_backend("torch")
    return backend if cpu_layout else dataclasses.replace(backend, narrow_transposed=False)


def count_fit(sizes: list[int], batch: int, make_optimizer: Any, n_batches: int,
              cpu_layout: bool = False) -> dict[str, Any]:
    """Marginal operations per fit step (fit of 2N batches minus fit of N, over N)."""
    import bpx

    rng = np.random.default_rng(0)
    x = rng.random((2 * n_batches * batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=2 * n_batches * batch)
    counts = []
    for n in (n_batches, 2 * n_batches):
        net = bpx.mlp(sizes, backend=torch_backend(cpu_layout), seed=0)
        optimizer = make_optimizer()
        net.fit(x[:batch], y[:batch], loss="softmax_cross_entropy", optimizer=optimizer, batch_size=batch,
                verbose=0)  # first-call work (caches, state) is not per step
        xd, yd = net.prepare_inputs(x[:n * batch]), net.backend.asarray(y[:n * batch], net.backend.int_dtype)
        with _counter() as counter:
            net.fit(xd, yd, loss="softmax_cross_entropy", optimizer=optimizer, batch_size=batch, shuffle=False,
                    verbose=0)
        counts.append(counter.ops)
    return _split(counts[1] - counts[0], n_batches)


def count_train_step(sizes: list[int], batch: int, make_optimizer: Any) -> dict[str, Any]:
    """Operations of one :func:`bpx.training.train_step` on device arrays (gradients kept)."""
    import bpx
    from bpx.training import train_step

    rng = np.random.default_rng(0)
    net = bpx.mlp(sizes, backend=torch_backend(), seed=0)
    loss, optimizer = bpx.SoftmaxCrossEntropy(), make_optimizer()
    x = net.prepare_inputs(rng.random((batch, sizes[0]), dtype=np.float32))
    t = net.prepare_targets(rng.integers(0, sizes[-1], size=batch), loss)
    train_step(net, x, t, loss, optimizer)
    with _counter() as counter:
        train_step(net, x, t, loss, optimizer)
    return _split(counter.ops, 1)


def count_update(hidden_layers: int, make_optimizer: Any, width: int) -> dict[str, Any]:
    """Operations of one optimizer update for an MLP with ``hidden_layers`` hidden layers."""
    import bpx

    net = bpx.mlp([width] * (hidden_layers + 1) + [10], backend=torch_backend(), seed=0)
    optimizer = make_optimizer()
    grads = net.backend.zeros((net.store.trainable_size,))
    optimizer.update(net.store, grads)
    with _counter() as counter:
        optimizer.update(net.store, grads)
    return {"layers": hidden_layers + 1, "parameters": net.n_parameters, **_split(counter.ops, 1)}


def time_fit(sizes: list[int], batch: int, samples: int, make_optimizer: Any, repeats: int) -> float:
    """Median seconds per step of a ``fit`` epoch on the PyTorch CPU backend."""
    import bpx

    rng = np.random.default_rng(1)
    net = bpx.mlp(sizes, backend="torch", seed=0)
    xd = net.prepare_inputs(rng.random((samples, sizes[0]), dtype=np.float32))
    yd = net.backend.asarray(rng.integers(0, sizes[-1], size=samples), net.backend.int_dtype)
    optimizer = make_optimizer()
    net.fit(xd, yd, loss="ce", optimizer=optimizer, batch_size=batch, verbose=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        net.fit(xd, yd, loss="ce", optimizer=optimizer, batch_size=batch, verbose=0)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / -(-samples // batch)


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = report.logger(args.quiet)
    try:
        import torch
    except ImportError:
        raise SystemExit("the opcount case needs PyTorch (its dispatch mode counts the operations)") from None
    from ..threads import configure_torch

    configure_torch(torch)
    sizes, batch = args.sizes, args.batch_sizes[0]
    n_batches = 2 if args.quick else 32  # a multiple of the batches fit gathers at once
    results: dict[str, Any] = {}
    for name, make in _optimizers().items():
        log(f"opcount: {name}")
        results[name] = {
            "fit_step": count_fit(sizes, batch, make, n_batches),
            "train_step": count_train_step(sizes, batch, make),
            "update_by_depth": [count_update(h, make, 16 if args.quick else 64) for h in (1, 2, 4, 8)],
            "fit_seconds_per_step": time_fit(sizes, batch, min(args.samples, 20 * batch), make, args.repeats),
        }
    results["SGD momentum 0.9"]["fit_step_cpu_layout"] = count_fit(sizes, batch, _optimizers()["SGD momentum 0.9"],
                                                                   n_batches, cpu_layout=True)
    payload = {"case": "opcount",
               "config": {"sizes": sizes, "batch_size": batch, "quick": args.quick, "threads": args.threads,
                          "fit_batches_counted": n_batches},
               "machine": report.machine_info(), "results": results}
    report.publish("opcount", payload, render(payload), args)
    return payload


def render(payload: dict[str, Any]) -> str:
    cfg, results = payload["config"], payload["results"]
    rows, depth_rows = [], []
    for name, r in results.items():
        fit, step = r["fit_step"], r["train_step"]
        rows.append([name, f"{fit['total']:g}", f"{fit['kernels']:g}", f"{step['total']:g}", f"{step['kernels']:g}",
                     f"{1e6 * r['fit_seconds_per_step']:.0f}", f"{8 * fit['kernels'] / 1000:.2f}–"
                     f"{25 * fit['kernels'] / 1000:.2f}"])
        for d in r["update_by_depth"]:
            depth_rows.append([name, d["layers"], f"{d['parameters']:,}", f"{d['total']:g}", f"{d['kernels']:g}"])
    top = ", ".join(f"{k} {v:g}" for k, v in list(results["SGD momentum 0.9"]["fit_step"]["by_op"].items())[:12])
    cpu = results["SGD momentum 0.9"].get("fit_step_cpu_layout")
    cpu_line = ("" if cpu is None else f"As this CPU runs it (narrow products transposed), the SGD momentum fit step "
                f"dispatches {cpu['total']:g} operations, {cpu['kernels']:g} of them kernels.")
    sizes = "-".join(map(str, cfg["sizes"]))
    return "\n".join([
        "# bpx benchmark: operations per training step (PyTorch dispatch mode)",
        "",
        f"MLP {sizes}, ReLU, softmax cross-entropy, batch {cfg['batch_size']}, float32, PyTorch CPU backend "
        "with the layout a GPU uses (no CPU-only narrow transposes). Kernels launch work; views (view, permute, "
        "slice, ...) only change metadata.",
        "",
        *report.machine_summary(payload["machine"]),
        "",
        report.table(["optimizer", "fit step: ops", "kernels", "train_step: ops", "kernels", "CPU µs/step (fit)",
                      "GPU launch ms/step at 8–25 µs"], rows),
        "",
        f"Per fit step with SGD momentum, by operation: {top}.",
        "",
        *([cpu_line, ""] if cpu_line else []),
        "The update's cost does not grow with the depth (one flat buffer):",
        "",
        report.table(["optimizer", "Dense layers", "parameters", "update: ops", "kernels"], depth_rows),
    ])
