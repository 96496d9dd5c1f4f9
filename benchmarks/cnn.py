"""The CNN case: training steps of a LeNet-style network in bpx (NumPy, PyTorch backends) against
PyTorch's own CPU convolutions, side by side, plus the peak memory of bpx's im2col path.

    python -m benchmarks.cnn                      # 50 steps of batch 128 per round, 5 rounds
    python -m benchmarks.cnn --threads 1          # pinned single thread
    python -m benchmarks.cnn --quick --out /tmp/b # seconds (CI)

Network: :func:`bpx.cnn` with its defaults on (1, 28, 28) inputs: conv 5×5 (16) → ReLU → max 2×2 →
conv 5×5 (32) → ReLU → max 2×2 → 512 → 128 → 10 (``--quick``: 4 and 8 channels, 16 hidden).
Every implementation starts each round from the same float32 weights (restored inside the timed
call; a copy of 80k floats) and takes the same batches (MNIST when found, else random images with
a note), plain SGD (``--lr``), softmax cross-entropy. Implementations:

* ``torch-autograd``: ``torch.nn`` (``Conv2d``, ``MaxPool2d``, ``Linear``) + ``F.cross_entropy`` +
  ``loss.backward()`` + ``torch.optim.SGD``: PyTorch's own CPU convolutions (oneDNN/im2col);
* ``bpx-numpy``, ``bpx-torch``: :func:`bpx.training.step.train_step` on device arrays, as ``fit``
  runs it (no metrics, the optimizer may work in the gradient buffer).

Rounds alternate the implementations (:func:`benchmarks.timing.round_robin`); the report gives
median/min/max seconds per step, the ratio to ``torch-autograd`` and the loss after the round's
steps (the same weights and batches: they must agree to float32 rounding). The memory table
gives, per ``Conv2D``, the im2col matrix ``C·kh·kw × H_out·W_out·n`` floats (kept from forward to
backward) and the peak of traced (NumPy) allocations during one bpx-numpy step (``tracemalloc``)
at two batch sizes, to show that it grows linearly with the batch.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import threads

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cnn", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="training steps per timed round (default 50)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default %(default)s)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default %(default)s)")
    p.add_argument("--impls", default="torch-autograd,bpx-numpy,bpx-torch",
                   help="comma-separated implementations (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP/PyTorch threads, pinned to that many CPUs")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default ../shared/datasets/mnist if present)")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results/)")
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--quick", action="store_true", help="tiny configuration for CI: 3 steps of 16, small network")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick
    for key, full, small in (("steps", 50, 3), ("batch_size", 128, 16), ("repeats", 5, 1)):
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    if min(args.steps, args.batch_size, args.repeats) < 1 or args.warmup < 0:
        raise SystemExit("--steps, --batch-size and --repeats must be positive, --warmup non-negative")
    args.impls = [name for name in args.impls.replace(",", " ").split() if name]
    unknown = sorted(set(args.impls) - {"torch-autograd", "bpx-numpy", "bpx-torch"})
    if unknown:
        raise SystemExit(f"unknown implementations {unknown}; valid: torch-autograd, bpx-numpy, bpx-torch")
    return args


# ---------------------------------------------------------------------- workload
def architecture(quick: bool) -> dict[str, Any]:
    return {"channels": (4, 8), "hidden": 16} if quick else {"channels": (16, 32), "hidden": 128}


def batches(args: argparse.Namespace, notes: list[str]) -> list[tuple[Any, Any]]:
    """``steps`` host batches ``(x (n, 1, 28, 28) float32, labels (n,) int64)``."""
    import numpy as np

    n = args.steps * args.batch_size
    folder = Path(args.data_dir) if args.data_dir else ROOT.parent / "shared" / "datasets" / "mnist"
    x = y = None
    if folder.is_dir():
        try:
            from bpx.datasets import mnist

            x, y = mnist(folder, download=False, split="train", flatten=False)
            x, y = x[:n].reshape(-1, 1, 28, 28), y[:n].astype(np.int64)
        except Exception as err:  # any unreadable data set: fall back to random images
            notes.append(f"MNIST at {folder} unreadable ({err}); random images used")
            x = None
    else:
        notes.append(f"MNIST not found at {folder}; random images and labels used")
    if x is None or len(x) < n:
        rng = np.random.default_rng(0)
        x = rng.random((n, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, size=n)
    return [(x[i:i + args.batch_size], y[i:i + args.batch_size]) for i in range(0, n, args.batch_size)]


def bpx_runner(backend: str, args: argparse.Namespace, data: list[tuple[Any, Any]], weights: dict[str, Any]
               ) -> tuple[Callable[[int], float], Any]:
    """A task running ``steps`` bpx training steps from ``weights``; returns (task, network)."""
    import bpx
    from bpx.host.arrays import to_host
    from bpx.training.step import train_step

    net = bpx.cnn((1, 28, 28), backend=backend, dtype="float32", seed=0, **architecture(args.quick))
    loss = net.resolve_loss("softmax_cross_entropy")
    optimizer = bpx.SGD(lr=args.lr)
    device = [(net.prepare_inputs(x), loss.prepare_targets(t, net.backend, net.output_shape)) for x, t in data]
    sync = _synchronizer(backend)

    def task(_: int) -> float:
        net.load_state_dict(weights)
        value = None
        for x, t in device:
            value = train_step(net, x, t, loss, optimizer, keep_gradients=False).loss
        sync(value)
        return float(to_host(value))

    return task, net


def torch_runner(args: argparse.Namespace, data: list[tuple[Any, Any]], weights: dict[str, Any]
                 ) -> Callable[[int], float]:
    """The same steps in ``torch.nn`` + autograd + ``torch.optim.SGD`` (PyTorch's CPU convolutions)."""
    import torch

    arch = architecture(args.quick)
    (c1, c2), hidden = arch["channels"], arch["hidden"]
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    device = [(torch.from_numpy(x.copy()), torch.from_numpy(t.copy())) for x, t in data]
    # bpx's Dense stores W as (in, out); torch's Linear as (out, in). Conv weights share PyTorch's layout.
    order = [(0, "layers.0", False), (3, "layers.3", False), (7, "layers.7", True), (9, "layers.9", True)]
    initial = {}
    for index, prefix, transpose in order:
        w = weights[f"{prefix}.weight"]
        initial[f"{index}.weight"] = torch.from_numpy((w.T if transpose else w).copy())
        initial[f"{index}.bias"] = torch.from_numpy(weights[f"{prefix}.bias"].copy())

    def task(_: int) -> float:
        model.load_state_dict(initial)
        loss = None
        for x, t in device:
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), t)
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    return task


def _synchronizer(backend: str) -> Callable[[Any], None]:
    if backend == "jax":
        import jax

        return jax.block_until_ready
    return lambda value: None  # NumPy and PyTorch on the CPU compute eagerly


# ---------------------------------------------------------------------- memory of the im2col path
def im2col_table(net: Any, batch: int) -> list[tuple[str, str, int]]:
    """``(layer, cols shape, bytes)`` of each Conv2D's im2col matrix at ``batch`` (float32)."""
    from bpx.nn.conv import Conv2D

    rows = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Conv2D):
            out = net.shapes[i]
            k = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            cols = out[1] * out[2] * batch
            rows.append((f"layers[{i}] {layer!r}", f"{k} × {cols:,}", 4 * k * cols))
    return rows


def traced_peak(args: argparse.Namespace, batch: int) -> dict[str, float]:
    """Peak traced allocations (NumPy registers its buffers with tracemalloc) of one bpx-numpy
    forward pass and of one whole step at ``batch``, above what was allocated before."""
    import numpy as np

    import bpx
    from bpx.training.step import train_step

    net = bpx.cnn((1, 28, 28), backend="numpy", dtype="float32", seed=0, **architecture(args.quick))
    rng = np.random.default_rng(0)
    x = net.prepare_inputs(rng.random((batch, 1, 28, 28), dtype=np.float32))
    loss = net.resolve_loss("softmax_cross_entropy")
    t = loss.prepare_targets(rng.integers(0, 10, size=batch), net.backend, net.output_shape)
    optimizer = bpx.SGD(lr=args.lr)
    train_step(net, x, t, loss, optimizer, keep_gradients=False)  # allocate the gradient buffer once
    result = {}
    for what in ("forward", "step"):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        if what == "forward":
            passed = net.forward_pass(x, net.context(training=True))
            del passed
        else:
            train_step(net, x, t, loss, optimizer, keep_gradients=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        result[what] = (peak - base) / MIB
    result["im2col"] = sum(b for _, _, b in im2col_table(net, batch)) / MIB
    result["input"] = x.nbytes / MIB
    return result


# ---------------------------------------------------------------------- run and report
def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    import bpx

    from . import report
    from .timing import round_robin

    log = report.logger(args.quiet)
    notes: list[str] = []
    data = batches(args, notes)
    reference = bpx.cnn((1, 28, 28), backend="numpy", dtype="float32", seed=0, **architecture(args.quick))
    weights = {name: np.asarray(value, dtype=np.float32) for name, value in reference.state_dict().items()}
    tasks: dict[str, Callable[[int], float]] = {}
    for name in args.impls:
        try:
            if name == "torch-autograd":
                tasks[name] = torch_runner(args, data, weights)
            else:
                tasks[name] = bpx_runner(name.removeprefix("bpx-"), args, data, weights)[0]
        except ImportError as err:
            notes.append(f"{name} skipped: {err}")
    info = report.machine_info()
    log(f"cnn: {args.steps} steps of batch {args.batch_size}, {len(tasks)} implementations, "
        f"{args.warmup} warm-up + {args.repeats} rounds")
    start = time.perf_counter()
    samples = round_robin(tasks, args.repeats, args.warmup, progress=log)
    info["loadavg_end"] = report.loadavg()
    base = samples.get("torch-autograd")
    base_median = float(np.median([s.seconds for s in base])) if base else None
    rows, results = [], {}
    for name in tasks:
        seconds = [s.seconds / args.steps for s in samples[name]]
        losses = [s.value for s in samples[name]]
        median = float(np.median(seconds))
        ratio = median * args.steps / base_median if base_median else None
        foreign = [s.foreign for s in samples[name] if s.foreign is not None]
        results[name] = {"seconds_per_step": seconds, "median": median, "ratio_to_torch": ratio,
                         "losses": losses, "other_load": foreign}
        rows.append((name, report.fmt(1e3 * median), report.fmt(1e3 * min(seconds)), report.fmt(1e3 * max(seconds)),
                     report.fmt(args.batch_size / median), "–" if ratio is None else f"{ratio:.2f}×",
                     f"{losses[-1]:.6f}", f"{100 * max(foreign):.0f}%" if foreign else "–"))
    finals = [r["losses"][-1] for r in results.values()]
    if finals and max(finals) - min(finals) > 1e-3 * max(1.0, abs(min(finals))):
        notes.append(f"the final losses differ by {max(finals) - min(finals):.2e}: the implementations do not "
                     "compute the same steps")
    memory_batches = [args.batch_size, 4 * args.batch_size]
    log("cnn: measuring traced memory of the bpx-numpy step")
    memory = {b: traced_peak(args, b) for b in memory_batches}
    conv_rows = im2col_table(reference, args.batch_size)
    lines = [f"# CNN training steps: bpx vs PyTorch CPU ({'quick' if args.quick else 'full'})", "",
             *report.machine_summary(info), "",
             f"{args.steps} SGD steps (lr {args.lr}) of batch {args.batch_size} per round, median of {args.repeats} "
             f"rounds after {args.warmup} warm-up; network `bpx.cnn(**{architecture(args.quick)})`, float32; "
             f"{time.perf_counter() - start:.1f} s in all.", "",
             report.table(["implementation", "ms/step", "min", "max", "samples/s", "× torch", "final loss",
                           "other load"], rows), "",
             "## Memory of the im2col path (bpx-numpy, float32)", "",
             report.table(["Conv2D", f"im2col matrix (batch {args.batch_size})", "MiB"],
                          [(name, shape, report.fmt(b / MIB)) for name, shape, b in conv_rows]), "",
             report.table(["batch", "im2col matrices MiB", "input MiB", "peak of a forward pass MiB",
                           "peak of a training step MiB"],
                          [(b, report.fmt(m["im2col"]), report.fmt(m["input"]), report.fmt(m["forward"]),
                            report.fmt(m["step"])) for b, m in memory.items()]), "",
             "Peaks are traced allocations (tracemalloc) above the step's starting point; the forward pass keeps "
             "every im2col matrix for the backward pass, which then adds one ∂cols matrix at a time."]
    if notes:
        lines += ["", "Notes:", *(f"- {note}" for note in notes)]
    payload = {"case": "cnn", "args": vars(args), "machine": info, "results": results,
               "memory": {str(b): m for b, m in memory.items()}, "notes": notes}
    args.case = "cnn"
    report.publish("cnn", payload, "\n".join(lines), args)
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    args = apply_defaults(parser().parse_args(argv))
    threads.configure(args.threads)  # before NumPy/PyTorch are imported
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
