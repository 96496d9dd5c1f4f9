"""The ``bpx`` command (also ``python -m bpx``): ``train``, ``eval``, ``demo``, ``explain``, ``export``, ``backends``.

Every subcommand has ``--help`` with its defaults. Exit statuses: 0 success, 1 an error (one line
on stderr), 2 a usage error, 130 Ctrl-C (after ``train`` has saved, plotted and reported).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence

from .. import startup
from ..export.onnx import add_cli_parser as add_export_parser
from ..export.onnx import run_cli as run_export
from ..version import DISTRIBUTION, __version__
from . import evaluate, explain, train
from .guard import guarded
from .options import EXIT_OK, Parser, given_options

Command = Callable[[argparse.Namespace, set[str]], int]


def build_parser() -> Parser:
    """The ``bpx`` parser with every subcommand."""
    parser = Parser(prog="bpx", description="Backpropagation on any Array API backend (NumPy, CuPy, PyTorch, JAX,\n"
                                            "array-api-strict). See bpx COMMAND --help for each command's options.")
    parser.add_argument("--version", action="version", version=f"bpx {__version__} ({DISTRIBUTION})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    explain.add_parsers(sub)
    add_export_parser(sub)
    sub.add_parser("backends", help="bpx's version, the installed backends, their versions and devices",
                   description="bpx's version, then every backend: installed or not (and why), version, devices.")
    parser.commands = dict(sub.choices)
    return parser


def run_backends(args: argparse.Namespace, given: set[str]) -> int:
    """``bpx backends``: the version line, the threads, then the backends table."""
    from ..backend.report import report
    from .threads import blas_thread_counts

    print(f"bpx {__version__} (pip: {DISTRIBUTION}) · Python {platform.python_version()} · {sys.platform}")
    blas = ", ".join(f"{name}: {n} thread{'s' if n != 1 else ''}" for name, n in blas_thread_counts().items())
    if blas:
        print(f"BLAS/OpenMP: {blas}")
    print(report())
    return EXIT_OK


COMMANDS: dict[str, Command] = {"train": train.run, "eval": evaluate.run, "explain": explain.run,
                                "demo": explain.run_demo, "export": run_export, "backends": run_backends}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bpx`` console script and of ``python -m bpx``; returns the exit status."""
    startup.ready()  # from here on, Ctrl-C is handled by the command (see bpx.startup)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_command(argv)
    except KeyboardInterrupt:
        print("bpx: interrupted", file=sys.stderr)
        return 130
    return guarded(f"bpx {args.command}", lambda: COMMANDS[args.command](args, given_options(argv)))


if __name__ == "__main__":
    sys.exit(main())
