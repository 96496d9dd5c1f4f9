"""Command line of the benchmark suite (shared by every entry point).

Parsing needs nothing heavy; :func:`main` applies the thread settings (see
:mod:`benchmarks.threads`) *before* it imports the cases, which import NumPy, PyTorch and JAX.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import threads

CASES = ("mlp", "small", "memory", "profile", "opcount")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [v for v in text.replace(",", " ").split() if v]


def parser(default_case: str = "mlp") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{default_case if default_case in CASES else 'mlp'}",
        description="Time bpx against a hand-written NumPy loop, PyTorch autograd and jax.jit on the same "
                    "data, weights and batch order (round-robin, median of --repeats epochs).")
    p.add_argument("--case", default=default_case, choices=(*CASES, "all"),
                   help="mlp: MNIST MLP epochs; small: 2-2-2 train_step µs; memory: peak RSS of a fit epoch; "
                        "profile: cProfile of bpx's NumPy epoch; all: mlp, small and memory (default %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="thread count for BLAS/OpenMP/PyTorch, pinning the process to that many CPUs "
                        "(default: the libraries' own choice)")
    p.add_argument("--unset-openblas-coretype", action="store_true",
                   help="remove OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from this run's environment")
    p.add_argument("--no-pin", action="store_true", help="with --threads, do not restrict the CPU affinity")
    p.add_argument("--backend", default="cpu", choices=("cpu", "numpy", "torch", "jax", "cupy"),
                   help="which bpx backend(s) and peers: cpu = all CPU implementations; cupy = bpx on CuPy "
                        "with the PyTorch-CUDA peer; torch/jax = that library (see --device)")
    p.add_argument("--device", default=None, help="device for --backend (e.g. cuda:0, 0, gpu)")
    p.add_argument("--impls", type=_names, default=None,
                   help="comma-separated implementation names instead of the --backend group "
                        "(the baseline numpy-hand is always useful to include)")
    p.add_argument("--batch-sizes", type=_ints, default=None, help="comma-separated (default 128,1024)")
    p.add_argument("--samples", type=int, default=None, help="samples per epoch (default 60000)")
    p.add_argument("--sizes", type=_ints, default=None, help="layer widths (default 784,256,256,10)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and batch orders")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="small case: steps per timed round (default 2000)")
    p.add_argument("--wait-quiet", type=float, default=None,
                   help="before each timed round, wait up to this many seconds for other processes to use less "
                        "than --quiet-below of our CPUs (default 30; 0 with --quick; 0 disables)")
    p.add_argument("--quiet-below", type=float, default=0.2,
                   help="share of our CPUs used by others that counts as quiet (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default ../shared/datasets/mnist if present)")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results/)")
    p.add_argument("--tag", default="", help="suffix of the output file names (e.g. t1)")
    p.add_argument("--quick", action="store_true",
                   help="tiny configuration (2 batches of 64, network 784-16-16-10, 1 repeat) for CI")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    return p


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the size options from ``--quick`` or the full defaults."""
    quick = args.quick
    defaults = {"batch_sizes": [64] if quick else [128, 1024], "samples": 128 if quick else 60000,
                "sizes": [784, 16, 16, 10] if quick else [784, 256, 256, 10], "repeats": 1 if quick else 5,
                "steps": 20 if quick else 2000, "wait_quiet": 0.0 if quick else 30.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if len(args.sizes) < 2:
        raise SystemExit("--sizes needs at least an input and an output width")
    if args.repeats < 1 or args.warmup < 0 or args.samples < 1 or args.steps < 1:
        raise SystemExit("--repeats, --samples and --steps must be positive, --warmup non-negative")
    return args


def main(argv: Sequence[str] | None = None, default_case: str = "mlp") -> int:
    """Parse, set the thread environment, then run the case(s)."""
    args = apply_defaults(parser(default_case).parse_args(argv))
    threads.configure(args.threads, args.unset_openblas_coretype, pin=not args.no_pin)
    from .cases import run_case  # heavy imports happen here, after the thread setup

    cases = ["mlp", "small", "memory"] if args.case == "all" else [args.case]
    for case in cases:
        run_case(case, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
