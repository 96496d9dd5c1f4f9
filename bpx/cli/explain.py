"""``bpx explain`` (every number of one backpropagation step of a small network, from a JSON spec
or the 2-2-2 worked example) and ``bpx demo`` (the worked example with E after 10,000 steps).
The spec format lives in :mod:`bpx.explain.spec`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..explain import FORMATS, explain, render
from ..explain.spec import WORKED_EXAMPLE, load_spec, parse_spec
from .devices import resolve_backend
from .files import check_plot_path
from .options import EXIT_OK, Parser, add_backend_options, positive_int

DESCRIPTION = """\
Every number of one backpropagation step, as textbook derivations show it: forward pass, error,
δ of every neuron, chain rule of every weight, update, and E after the update."""
#: From this many steps on, say on stderr that it may take a while (about 10,000 steps a second).
LONG_RUN = 100_000
DEMO_STEPS = 10_000


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    """The ``bpx explain`` arguments."""
    p.add_argument("spec", nargs="?", help="JSON spec of a small network (default: the 2-2-2 worked example; "
                                           "format in docs/backprop.md)")
    p.add_argument("--steps", type=positive_int, default=1, metavar="N",
                   help="also report E after N training steps")
    p.add_argument("--format", choices=FORMATS, default="text", help="plain text, Markdown or LaTeX")
    p.add_argument("--precision", type=positive_int, default=9, metavar="DIGITS",
                   help="significant digits of every number")
    p.add_argument("--plot", metavar="PATH", help="draw the network with each weight and gradient (needs matplotlib)")
    add_backend_options(p, dtype=False)


def add_parsers(sub: Any) -> None:
    """Add ``bpx explain`` and ``bpx demo`` to the subcommands ``sub``."""
    add_explain_arguments(sub.add_parser("explain", help="every number of one backprop step of a small network",
                                         description=DESCRIPTION))
    demo = sub.add_parser("demo", help="the 2-2-2 worked example of backpropagation",
                          description="The classic 2-2-2 worked example: every number of its first step, and E\n"
                                      f"after {DEMO_STEPS:,} steps (bpx explain --steps {DEMO_STEPS}).")
    add_backend_options(demo, dtype=False)


def run(args: argparse.Namespace, given: set[str]) -> int:
    """``bpx explain``: print the derivation (stdout), optionally draw it."""
    if args.plot:
        check_plot_path(args.plot)  # before the work, not after it
    spec = load_spec(args.spec) if args.spec else parse_spec(WORKED_EXAMPLE, "worked example")
    backend = None
    if args.backend or args.device:
        chosen = argparse.Namespace(backend=args.backend or spec.backend, device=args.device)
        backend = resolve_backend(chosen, spec.dtype, what="a step")
    net = spec.network(backend)
    if args.steps >= LONG_RUN:
        print(f"bpx explain: training {args.steps:,} steps for 'E after {args.steps:,} steps' (Ctrl-C stops)",
              file=sys.stderr, flush=True)
    record = explain(net, [list(r) for r in spec.inputs], [list(r) for r in spec.targets], spec.loss, spec.lr,
                     steps=args.steps)
    sys.stdout.write(render(record, args.format, args.precision))
    if args.plot:
        from ..explain.plot import plot_network

        print(f"wrote {plot_network(record, args.plot)}", file=sys.stderr)
    return EXIT_OK


def run_demo(args: argparse.Namespace, given: set[str]) -> int:
    """``bpx demo``: ``bpx explain --steps 10000`` on the worked example."""
    args = argparse.Namespace(spec=None, steps=DEMO_STEPS, format="text", precision=9, plot=None,
                              backend=args.backend, device=args.device)
    return run(args, given)


def run_explain_cli(argv: list[str] | None = None) -> int:
    """``bpx explain ARGS`` as a function (used by tests): returns the exit status."""
    from .guard import guarded

    parser = Parser(prog="bpx explain", description=DESCRIPTION)
    add_explain_arguments(parser)
    args = parser.parse_args(argv)
    return guarded("bpx explain", lambda: run(args, set()))
