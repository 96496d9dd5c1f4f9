"""bpx.sklearn.MLPClassifier against scikit-learn's own MLPClassifier, side by side in one run.

Same data (MNIST from ``../shared/datasets/mnist``, else the packaged ``mnist-mini``), same
architecture (784-256-256-10 ReLU by default), same solver settings (Adam, learning rate 1e-3,
``batch_size=200``, ``alpha=1e-4``), float32 inputs, and exactly ``--epochs`` epochs each
(``tol=0`` and ``n_iter_no_change`` past the end, so neither stops early). Reported: fit time
(wall-clock, one fit each, implementations alternated over ``--repeats`` rounds), seconds per
epoch, test accuracy, the final training loss, and how busy the machine's other processes
kept its CPUs during each fit. ``--backends`` adds bpx on other backends (e.g. ``numpy,torch``).

    python -m benchmarks.sklearn_mlp                 # full MNIST, 10 epochs
    python -m benchmarks.sklearn_mlp --quick         # 2,000 images, 2 epochs: seconds (CI)

Results go to ``--out`` (default ``benchmarks/results/``) as ``sklearn_mlp.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


def load_data(quick: bool, data_dir: Path | None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[Any, Any], str]:
    """``((x_train, y_train), (x_test, y_test), description)`` as float32 in [0, 1]."""
    from bpx.datasets import mnist, mnist_mini

    folder = data_dir or SHARED_MNIST
    if folder.is_dir():
        (xtr, ytr), (xte, yte) = mnist(folder, download=False)
        source = f"MNIST from {folder}"
    else:
        (xtr, ytr), (xte, yte) = mnist_mini()
        source = "mnist-mini (the packaged 6,000/1,000 subset; real MNIST not found)"
    if quick:
        xtr, ytr, xte, yte = xtr[:2000], ytr[:2000], xte[:500], yte[:500]
    return (xtr, ytr), (xte, yte), f"{source}: {len(xtr):,} training, {len(xte):,} test images"


def other_load() -> float:
    """CPU seconds per second used by the whole machine (from /proc/stat), 0 where unknown."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return fields[0] + fields[1] + fields[2]  # user, nice, system jiffies


def make_estimators(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.neural_network import MLPClassifier as SkMLP

    from bpx.sklearn import MLPClassifier as BpxMLP

    common = dict(hidden_layer_sizes=tuple(args.hidden), activation="relu", solver="adam", alpha=1e-4,
                  batch_size=args.batch_size, learning_rate_init=1e-3, max_iter=args.epochs, tol=0.0,
                  n_iter_no_change=args.epochs + 1, shuffle=True, random_state=0)
    estimators: dict[str, Any] = {"scikit-learn": SkMLP(**common)}
    for backend in args.backends:
        estimators[f"bpx ({backend})"] = BpxMLP(**common, backend=backend, dtype="float32")
    return estimators


def run(args: argparse.Namespace) -> dict[str, Any]:
    (xtr, ytr), (xte, yte), source = load_data(args.quick, args.data)
    results: dict[str, dict[str, list[float]]] = {}
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    cpus = os.cpu_count() or 1
    make_estimators(args)  # import everything first: threadpoolctl limits the libraries loaded by then
    limits = None
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)  # BLAS/OpenMP pools of both estimators alike
    for _ in range(args.repeats):
        for name, est in make_estimators(args).items():
            load0, t0, cpu0 = other_load(), time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: the epoch count is fixed on purpose
                est.fit(xtr, ytr)
            seconds = time.perf_counter() - t0
            own = time.process_time() - cpu0
            busy = max(0.0, (other_load() - load0) / ticks - own) / (seconds * cpus)
            accuracy = float(est.score(xte, yte))
            entry = results.setdefault(name, {"seconds": [], "accuracy": [], "loss": [], "epochs": [],
                                              "other_load": []})
            entry["seconds"].append(seconds)
            entry["accuracy"].append(accuracy)
            entry["loss"].append(float(est.loss_))
            entry["epochs"].append(int(est.n_iter_))
            entry["other_load"].append(busy)
            if not args.quiet:
                print(f"{name:>14}: {seconds:7.2f} s  accuracy {accuracy:.4f}  loss {est.loss_:.4f}  "
                      f"({est.n_iter_} epochs, other load {100 * busy:.0f}%)", file=sys.stderr)
    threads = blas_threads()  # as the fits ran
    if limits is not None:
        limits.restore_original_limits()
    import sklearn

    import bpx

    return {"source": source, "hidden": args.hidden, "epochs": args.epochs, "batch_size": args.batch_size,
            "repeats": args.repeats, "results": results, "machine": {
                "python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
                "bpx": bpx.__version__, "cpus": cpus, "platform": platform.platform(), "threads": threads}}


def blas_threads() -> str:
    """The BLAS/OpenMP thread pools NumPy uses now (threadpoolctl), e.g. ``openblas: 2``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    return ", ".join(f"{p['internal_api']}: {p['num_threads']}" for p in threadpool_info()) or "none"


def markdown(report: dict[str, Any]) -> str:
    arch = "-".join(map(str, [784, *report["hidden"], 10]))
    lines = ["# bpx.sklearn vs scikit-learn: MLPClassifier on MNIST", "",
             f"{report['source']}; {arch} ReLU, Adam (lr 1e-3), batch {report['batch_size']}, alpha 1e-4, float32, "
             f"{report['epochs']} epochs; median of {report['repeats']} fit(s), alternated.", "",
             "| estimator | fit (s) | s/epoch | test accuracy | final loss | speed-up vs scikit-learn | other load |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = float(np.median(report["results"]["scikit-learn"]["seconds"]))
    for name, r in report["results"].items():
        sec = float(np.median(r["seconds"]))
        lines.append(f"| {name} | {sec:.2f} | {sec / max(r['epochs'][0], 1):.3f} | {np.median(r['accuracy']):.4f} | "
                     f"{np.median(r['loss']):.4f} | {base / sec:.2f}x | {100 * max(r['other_load']):.0f}% |")
    m = report["machine"]
    lines += ["", "Final loss: the last epoch's mean training loss (scikit-learn's includes the alpha penalty, bpx's "
                  "is the data loss alone). Other load: CPU time the machine's other processes used during the fit, "
                  "as a share of all CPUs (timings are noisy when it is high).",
              "", f"Python {m['python']}, NumPy {m['numpy']}, scikit-learn {m['sklearn']}, bpx {m['bpx']}, "
                  f"{m['cpus']} CPUs, {m['platform']}; threads {m['threads']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sklearn_mlp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 training images, 2 epochs (seconds)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 10; 2 with --quick)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden layer widths")
    parser.add_argument("--batch-size", type=int, default=200, help="minibatch size (scikit-learn's 'auto')")
    parser.add_argument("--backends", default="numpy", help="comma-separated bpx backends to time")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads for both (threadpoolctl)")
    parser.add_argument("--repeats", type=int, default=1, help="fits per estimator (alternated)")
    parser.add_argument("--data", type=Path, default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="report folder")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 10)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    (args.out / "sklearn_mlp.md").write_text(text)
    (args.out / "sklearn_mlp.json").write_text(json.dumps(report, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
