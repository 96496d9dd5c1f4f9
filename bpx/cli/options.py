"""What the ``bpx`` subcommands share: the argument parser, value types that name the flag and the
value in their errors, the option groups (data, backend, threads) and the errors a command reports.

Exit statuses: 0 success, 1 a runtime error (one line ``bpx CMD: error: ...``), 2 a usage error
(a bad value or a bad combination of options), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..backend import NAMES as BACKEND_NAMES
from ..errors import BpxError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DATASETS = ("mnist", "fashion-mnist", "mnist-mini")


class CLIError(BpxError):
    """A runtime error of a command, reported as one line with exit status 1."""


class UsageError(CLIError):
    """A bad combination of options, reported like argparse's errors (exit status 2)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default in ``--help`` (except ``None`` and ``False``, which mean "off"
    or "see the help text")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action) or ""
        default = action.default
        off = default is None or default is False or default == argparse.SUPPRESS
        if "%(default)" in text or off or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``bpx train: error: ... (see bpx train --help)``),
    defaults in ``--help`` and no abbreviated options (``--lim`` is an error, not ``--limit``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # subcommand parsers, by name

    def parse_command(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse ``argv``; an unknown argument is reported by the subcommand it was given to."""
        args, extra = self.parse_known_args(argv)
        if extra:
            command = self.commands.get(getattr(args, "command", None) or "", self)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return args

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------- value types
def _typed(check: Callable[[str], Any], expected: str) -> Callable[[str], Any]:
    """An argparse type: ``check(text)`` or the error ``expected <expected>, got '<text>'``
    (argparse prefixes the flag: ``argument --lr: expected a positive number, got 'abc'``)."""

    def parse(text: str) -> Any:
        try:
            value = check(text)
        except (ValueError, OverflowError):
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # argparse names the type only when the error is not ArgumentTypeError
    return parse


def _int_at_least(low: int) -> Callable[[str], int | None]:
    def check(text: str) -> int | None:
        value = int(text)
        return value if value >= low else None
    return check


def _float_in(low: float, high: float, low_open: bool, high_open: bool) -> Callable[[str], float | None]:
    def check(text: str) -> float | None:
        value = float(text)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return value if above and below else None
    return check


positive_int = _typed(_int_at_least(1), "a positive integer")
count = _typed(_int_at_least(0), "a non-negative integer")
positive_float = _typed(_float_in(0.0, float("inf"), True, True), "a positive number")
non_negative_float = _typed(_float_in(0.0, float("inf"), False, True), "a non-negative number")
fraction = _typed(_float_in(0.0, 1.0, False, True), "a number in [0, 1)")


def _backend_name(text: str) -> str | None:
    key = text.strip().lower().replace("-", "_")
    return key if key in BACKEND_NAMES else None


backend_name = _typed(_backend_name, f"one of {', '.join(BACKEND_NAMES)}")


# ---------------------------------------------------------------------- option groups
def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-dir``, ``--no-download``."""
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="mnist and fashion-mnist: 60,000 training and 10,000 test images, found in --data-dir, "
                        "$BPX_DATA_DIR or the cache, else downloaded and verified; mnist-mini: the subset "
                        "packaged with bpx (6,000 + 1,000 images; offline)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding the dataset's IDX files (raw or .gz); only there (not with mnist-mini)")
    p.add_argument("--no-download", action="store_true",
                   help="never download: fail when the files are not found (not with mnist-mini)")


def add_backend_options(p: argparse.ArgumentParser, dtype: bool = True) -> None:
    """``--backend``, ``--device`` and (optionally) ``--dtype``."""
    p.add_argument("--backend", type=backend_name, metavar="NAME",
                   help=f"{', '.join(BACKEND_NAMES)} (default: $BPX_BACKEND, else numpy)")
    p.add_argument("--device", help="a device of that backend: cpu, cuda:0 or mps (torch), 0 or 1 (cupy), "
                                    "gpu:0 (jax), device1 (array_api_strict)")
    if dtype:
        p.add_argument("--dtype", choices=("float32", "float64", "bfloat16", "float16"), default=None,
                       help="float dtype (default: float32; with --resume or for eval: the checkpoint's); "
                            "bfloat16 and float16 compute in that type with float32 master weights")


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """``--threads``."""
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads for BLAS/OpenMP (NumPy) and PyTorch (default: the libraries' own, or "
                        "$OMP_NUM_THREADS; under mpiexec: the cores divided among the ranks of each machine)")


# ---------------------------------------------------------------------- explicit options
def given_options(argv: Sequence[str]) -> set[str]:
    """The long options written on the command line (``--lr 0.1`` and ``--lr=0.1`` give ``--lr``),
    so that a command can tell an explicit value from a default."""
    given = set()
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            given.add(token.split("=", 1)[0])
    return given
