"""The ``bpx`` command: ``train``, ``eval``, ``demo``, ``explain``, ``backends``.

Every subcommand has ``--help``. Bad arguments or missing data end with a one-line error and a
non-zero exit status (2 for usage errors, 1 for everything else).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__

DATASETS = ("mnist", "mnist-mini")
LOSS_CHOICES = ("softmax_cross_entropy", "half_squared_error", "mean_squared_error", "binary_cross_entropy")


class CLIError(Exception):
    """An error reported as one line: ``bpx: error: <message>``."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (``bpx train: error: ... (see bpx train --help)``)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="mnist (full; local folder, cache or download) or mnist-mini (packaged subset, offline)")
    p.add_argument("--data-dir", help="folder holding the four MNIST IDX files (raw or .gz)")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the files are not found")


def _backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend",
                   help="numpy, cupy, torch, jax, array_api_strict or auto (default: $BPX_BACKEND or numpy)")
    p.add_argument("--device", help="device on that backend, e.g. cuda:0 (torch), 1 (cupy), device1 (strict)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bpx", description="Backpropagation on any Array API backend.")
    parser.add_argument("--version", action="version", version=f"bpx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser("train", help="train an MLP on MNIST", description="Train an MLP on MNIST.")
    _data_options(train)
    _backend_options(train)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--hidden", type=positive_int, nargs="*", default=[256, 256], metavar="N",
                       help="hidden layer sizes (default: 256 256; none for softmax regression)")
    train.add_argument("--activation", choices=("relu", "tanh", "sigmoid", "leaky_relu"), default="relu")
    train.add_argument("--loss", choices=LOSS_CHOICES, default="softmax_cross_entropy")
    train.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    train.add_argument("--lr", type=positive_float, default=0.05, help="learning rate (default 0.05)")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    train.add_argument("--nesterov", action="store_true")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--schedule", choices=("constant", "step", "cosine"), default="cosine",
                       help="learning-rate schedule over the epochs (default cosine)")
    train.add_argument("--epochs", type=positive_int, default=10)
    train.add_argument("--batch-size", type=positive_int, default=128)
    train.add_argument("--seed", type=int, default=0, help="seeds the weights and the batch order")
    train.add_argument("--limit", type=positive_int, help="use only the first N training images")
    train.add_argument("--save", metavar="PATH", help="write the trained network to this .npz checkpoint")
    train.add_argument("--plot", metavar="PNG", help="write learning curves (needs matplotlib)")
    train.add_argument("--compile", action="store_true", help="JAX only: run each step through jax.jit")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over MPI ranks: mpiexec -n 4 bpx train --distributed ...")
    train.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")

    ev = sub.add_parser("eval", help="evaluate a saved network on the MNIST test set",
                        description="Evaluate a checkpoint on the MNIST test set.")
    ev.add_argument("model", help="checkpoint written by bpx train --save or net.save()")
    _data_options(ev)
    _backend_options(ev)
    ev.add_argument("--loss", choices=LOSS_CHOICES, default="softmax_cross_entropy")
    ev.add_argument("--batch-size", type=positive_int, default=1024)

    demo = sub.add_parser("demo", help="the 2-2-2 worked example of backpropagation",
                          description="Run the classic 2-2-2 worked example and print every value.")
    _backend_options(demo)

    sub.add_parser("explain", help="every number of one backprop step (see bpx explain --help)", add_help=False)
    sub.add_parser("backends", help="installed backends, versions and devices",
                   description="List the backends bpx can use here, their versions and devices.")
    return parser


# ---------------------------------------------------------------------- commands
def load_dataset(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    from .datasets import DatasetError, mnist, mnist_mini

    try:
        if args.dataset == "mnist-mini":
            (x, y), (xt, yt) = mnist_mini()
        else:
            (x, y), (xt, yt) = mnist(args.data_dir, download=not args.no_download)
    except DatasetError as err:
        raise CLIError(str(err).replace("\n", " ")) from None
    return x, y, xt, yt


def build_mlp(args: argparse.Namespace) -> Any:
    from .models import mlp

    # squared-error losses: the classic network, sigmoid outputs fitted to one-hot targets
    squared = args.loss in ("half_squared_error", "mean_squared_error")
    return mlp([784, *args.hidden, 10], args.activation, "sigmoid" if squared else None, backend=args.backend,
               device=args.device, dtype=args.dtype, seed=args.seed)


def cmd_train(args: argparse.Namespace) -> int:
    import bpx

    if args.plot:  # fail before training, not after it
        from .plotting import require_matplotlib

        require_matplotlib()
    x, y, xt, yt = load_dataset(args)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    if args.loss != "softmax_cross_entropy":
        y, yt = np.eye(10, dtype=np.float32)[y], np.eye(10, dtype=np.float32)[yt]
    net = build_mlp(args)
    if args.optimizer == "sgd":
        optimizer = bpx.SGD(lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                            weight_decay=args.weight_decay)
    else:
        optimizer = bpx.get_optimizer(args.optimizer, lr=args.lr, weight_decay=args.weight_decay)
    schedule = {"constant": None, "step": bpx.StepLR(max(1, args.epochs // 3), 0.1),
                "cosine": bpx.CosineLR(args.epochs)}[args.schedule]
    sizes = "-".join(str(n) for n in [784, *args.hidden, 10])
    main_rank = not args.distributed or _is_rank_zero()  # under mpiexec, rank 0 reports and saves
    if main_rank:
        print(f"bpx {__version__}: MLP {sizes} ({args.activation}), {args.loss}, {optimizer!r}, {args.schedule} "
              f"schedule; {len(x)} training / {len(xt)} test images; {net.backend}", file=sys.stderr)
    start = time.perf_counter()
    history = net.fit(x, y, loss=args.loss, optimizer=optimizer, epochs=args.epochs, batch_size=args.batch_size,
                      validation_data=(xt, yt), seed=args.seed, lr_schedule=schedule,
                      verbose=0 if args.quiet or not main_rank else 1, compile=args.compile,
                      distributed=args.distributed)
    seconds = time.perf_counter() - start
    if not main_rank:
        return 0
    final = history.last()
    if args.save:
        path = net.save(args.save, optimizer)
        print(f"saved {path}", file=sys.stderr)
    if args.plot:
        from .plotting import plot_history

        plot_history(history, args.plot, title=f"MLP {sizes} on {args.dataset} ({net.backend.name})")
        print(f"wrote {args.plot}", file=sys.stderr)
    status = " (interrupted)" if history.interrupted else ""
    print(f"test accuracy {100 * final['val_accuracy']:.2f}%  test loss {final['val_loss']:.4f}  "
          f"train loss {final['loss']:.4f}  epochs {history.epochs}  {seconds:.1f}s  "
          f"[{net.backend.name} {net.backend.device} {net.backend.dtype_name}]{status}")
    return 130 if history.interrupted else 0


def _is_rank_zero() -> bool:
    from .distributed import mpi

    return mpi().COMM_WORLD.Get_rank() == 0


def cmd_eval(args: argparse.Namespace) -> int:
    import bpx

    try:
        net = bpx.load(args.model, backend=args.backend, device=args.device)
    except FileNotFoundError as err:
        raise CLIError(str(err)) from None
    _, _, xt, yt = load_dataset(args)
    if args.loss != "softmax_cross_entropy":
        yt = np.eye(10, dtype=np.float32)[yt]
    result = net.evaluate(xt, yt, loss=args.loss, batch_size=args.batch_size)
    accuracy = f"accuracy {100 * result['accuracy']:.2f}%  " if "accuracy" in result else ""
    print(f"{args.model}: {accuracy}loss {result['loss']:.4f} on {len(xt)} test images "
          f"[{net.backend.name} {net.backend.device} {net.backend.dtype_name}]")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .explain_spec import run_explain_cli

    argv = ["--steps", "10000"] + (["--backend", args.backend] if args.backend else [])
    argv += ["--device", args.device] if args.device else []
    return run_explain_cli(argv)


def cmd_backends(args: argparse.Namespace) -> int:
    from .sysinfo import report

    print(report())
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "demo": cmd_demo, "backends": cmd_backends}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bpx`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["explain"]:
        from .explain_spec import run_explain_cli

        return _guarded(lambda: run_explain_cli(argv[1:]))
    args = build_parser().parse_args(argv)
    return _guarded(lambda: COMMANDS[args.command](args))


def _guarded(run: Any) -> int:
    from .backend import BackendError
    from .io import CheckpointError

    try:
        return int(run() or 0)
    except (CLIError, BackendError, CheckpointError, ValueError, ImportError) as err:
        if os.environ.get("BPX_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"bpx: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
