"""Data-parallel scaling: samples/s of ``fit(distributed=True)`` on 1, 2, … MPI ranks.

    python -m benchmarks.scaling [--ranks 1 2] [--batch-size 128] [--epochs 2] [--quick]

Launches ``mpiexec -n R`` for each R with one BLAS thread per rank, times epochs of the MNIST
MLP (784-256-256-10, float32, SGD) after a warm-up epoch, and reports samples/s and the scaling
efficiency ``rate(R) / (R · rate(1))``, plus the allreduce volume per step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def worker(args: argparse.Namespace) -> None:
    """Runs on every rank; rank 0 prints one JSON line."""
    import bpx
    from bpx.datasets import mnist, mnist_mini
    from bpx.training.distributed import Communicator

    (x, y), _ = mnist(SHARED_MNIST) if SHARED_MNIST.is_dir() and not args.quick else mnist_mini()
    if args.quick:
        x, y = x[:512], y[:512]
    net = bpx.mlp([784, 16, 10] if args.quick else [784, 256, 256, 10], dtype="float32", seed=0)
    comm = Communicator()
    times = []
    for _ in range(args.epochs + 1):  # the first epoch warms up
        start = time.perf_counter()
        net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.01), epochs=1,
                batch_size=args.batch_size, seed=0, verbose=0, distributed=comm)
        times.append(time.perf_counter() - start)
    if comm.is_main:
        epoch = statistics.median(times[1:])
        print(json.dumps({"ranks": comm.size, "samples": len(x), "epoch_s": epoch,
                          "samples_per_s": len(x) / epoch, "parameters": net.n_parameters,
                          "batch_size": args.batch_size}), flush=True)


def launch(ranks: int, args: argparse.Namespace) -> dict:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit('mpiexec not found: pip install "bpx-backprop[mpi]"')
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    argv = [mpiexec, "-n", str(ranks), sys.executable, "-m", "benchmarks.scaling", "--worker",
            "--batch-size", str(args.batch_size), "--epochs", str(args.epochs)] + (["--quick"] if args.quick else [])
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1])
    if result.returncode != 0:
        raise SystemExit(f"mpiexec -n {ranks} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (checks the code runs)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    rows = [launch(r, args) for r in args.ranks]
    base = rows[0]["samples_per_s"] / rows[0]["ranks"]
    volume = rows[0]["parameters"] * 4 + 8
    lines = [f"Data-parallel scaling (1 BLAS thread per rank, global batch {args.batch_size}, float32; "
             f"allreduce of {volume / 1e6:.2f} MB per step)", "",
             "| ranks | epoch (s) | samples/s | speed-up | efficiency |", "|---|---|---|---|---|"]
    for row in rows:
        speedup = row["samples_per_s"] / rows[0]["samples_per_s"]
        efficiency = row["samples_per_s"] / (row["ranks"] * base)
        lines.append(f"| {row['ranks']} | {row['epoch_s']:.3f} | {row['samples_per_s']:,.0f} | {speedup:.2f}x "
                     f"| {100 * efficiency:.0f} % |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.md").write_text(table + "\n")
    (args.out / "scaling.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
