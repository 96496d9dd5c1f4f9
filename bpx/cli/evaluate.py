"""``bpx eval``: the test figures of a checkpoint, computed from the test split alone."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import data as cli_data
from .devices import checkpoint_dtype, resolve_backend
from .options import (
    EXIT_OK,
    CLIError,
    add_backend_options,
    add_data_options,
    add_threads_option,
    positive_int,
)
from .text import LOSS_TITLES, describe_network, figures
from .threads import apply_threads, choose_threads, export_threads


def add_parser(sub: Any) -> None:
    """Add ``bpx eval`` to the subcommands ``sub``."""
    p = sub.add_parser("eval", help="test accuracy and loss of a saved network",
                       description="Evaluate a checkpoint (written by bpx train --save or net.save()) on the test\n"
                                   "images of the dataset, with the loss it was trained with. Only the test split\n"
                                   "is loaded.")
    p.add_argument("model", metavar="CHECKPOINT", help="a .npz checkpoint")
    add_data_options(p)
    add_backend_options(p)
    p.add_argument("--loss", choices=tuple(LOSS_TITLES),
                   help="the loss to report (default: the one the network was trained with)")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="images per forward pass")
    add_threads_option(p)
    p.add_argument("--quiet", action="store_true", help="print only the figures")


def run(args: argparse.Namespace, given: set[str]) -> int:
    """``bpx eval``; returns the exit status."""
    from ..sequential import load

    cli_data.check_data_options(args)
    threads = choose_threads(args.threads)
    export_threads(threads)
    backend = resolve_backend(args, args.dtype or checkpoint_dtype(args.model), what="an evaluation")
    apply_threads(threads)
    try:
        net = load(args.model, backend=backend)
    except FileNotFoundError:
        raise CLIError(f"{args.model}: no such checkpoint file") from None
    loss = args.loss or (net.loss.name if net.loss is not None else None)
    if loss is None:
        raise CLIError(f"{args.model}: the checkpoint does not say which loss it was trained with; pass --loss")
    if not args.quiet:
        cli_data.announce(args, "test split")
    x, labels = cli_data.load_split(args, "test")
    x = cli_data.shaped_for(net, x, f"the {args.dataset} test images")
    result = net.evaluate(x, cli_data.targets_for(loss, labels), loss=loss, batch_size=args.batch_size,
                          metrics=["accuracy"])
    if not args.quiet:
        print(f"{args.model}: {describe_network(net)} · {LOSS_TITLES[loss]}", file=sys.stderr)
    print(f"{figures(result, loss)}  on {len(x):,} test images of {args.dataset}  [{net.backend.describe()}]")
    return EXIT_OK

