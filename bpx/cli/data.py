"""The datasets of the command line: one split at a time, the validation hold-out, targets for each
loss and inputs shaped for the network.

Names, used the same way by ``train``, ``eval`` and the README: the **training** images are the
dataset's training split less the validation hold-out; the **validation** images
(``--validation N``) are the last N of the training split; the **test** images are the dataset's
test split, used only for the final figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ShapeError
from .options import UsageError

Split = tuple[np.ndarray, np.ndarray]
N_CLASSES = 10


def check_data_options(args: argparse.Namespace) -> None:
    """Refuse options that would be ignored: a data folder or download switch for the packaged subset."""
    if args.dataset == "mnist-mini":
        for flag, value in (("--data-dir", args.data_dir), ("--no-download", args.no_download)):
            if value:
                raise UsageError(f"{flag}: mnist-mini is packaged with bpx and needs no data folder or download; "
                                 "drop the option or use --dataset mnist")
    if args.data_dir is not None:
        from pathlib import Path

        if not Path(args.data_dir).is_dir():
            raise UsageError(f"--data-dir {args.data_dir}: no such folder")


def announce(args: argparse.Namespace, what: str) -> None:
    """Say on stderr what is being loaded from where (a download can take a while)."""
    where = "packaged with bpx" if args.dataset == "mnist-mini" else (
        f"from {args.data_dir}" if args.data_dir else "from $BPX_DATA_DIR, the cache or a download")
    print(f"loading {args.dataset} ({what}) {where}", file=sys.stderr, flush=True)


def load_split(args: argparse.Namespace, split: Literal["train", "test"]) -> Split:
    """``(x, labels)`` of one split of ``args.dataset``: x float32 ``(n, 784)`` in [0, 1], labels int64."""
    from ..datasets import fashion_mnist, mnist, mnist_mini

    if args.dataset == "mnist-mini":
        return mnist_mini(split=split)
    loader = fashion_mnist if args.dataset == "fashion-mnist" else mnist
    return loader(args.data_dir, download=not args.no_download, split=split)


@dataclass
class TrainingData:
    """The three parts the training command uses (see the module docstring)."""

    train: Split
    validation: Split | None
    test: Split


def training_data(args: argparse.Namespace, quiet: bool = False) -> TrainingData:
    """Load both splits; hold out ``args.validation`` training images and keep the first ``args.limit``
    of the rest. Raises :class:`UsageError` when there are not enough images for that."""
    if not quiet:
        announce(args, "training and test splits")
    x, y = load_split(args, "train")
    n = len(x)
    hold = args.validation
    if hold >= n:
        raise UsageError(f"--validation {hold}: {args.dataset} has only {n:,} training images")
    validation = (x[n - hold:], y[n - hold:]) if hold else None
    x, y = x[:n - hold], y[:n - hold]
    if args.limit is not None:
        if args.limit > len(x):
            held = f" ({hold:,} held out for validation)" if hold else ""
            raise UsageError(f"--limit {args.limit}: {args.dataset} has {len(x):,} training images{held}")
        x, y = x[:args.limit], y[:args.limit]
    return TrainingData((x, y), validation, load_split(args, "test"))


def targets_for(loss: str, labels: np.ndarray) -> np.ndarray:
    """Class labels for softmax cross-entropy; one-hot rows (float32) for the other losses."""
    if loss == "softmax_cross_entropy":
        return labels
    return np.eye(N_CLASSES, dtype=np.float32)[labels]


def shaped_for(net: Any, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` (n, 784) reshaped to the network's input shape (``(n, 1, 28, 28)`` for a CNN)."""
    shape = tuple(net.input_shape)
    if int(np.prod(shape)) != x.shape[1] or tuple(net.output_shape) != (N_CLASSES,):
        raise ShapeError(f"the network takes inputs {shape} and gives outputs {tuple(net.output_shape)}, but "
                         f"{what} has {x.shape[1]} pixels per image and {N_CLASSES} classes")
    return x if shape == (x.shape[1],) else x.reshape((len(x), *shape))
