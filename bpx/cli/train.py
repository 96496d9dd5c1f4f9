"""``bpx train``: train a network on MNIST-like data, report the test figures, save and plot.

The order of work is chosen so that nothing is lost or left half-done:

1. every option and output path is checked (bad combinations, unwritable ``--save``/``--plot``
   paths, a missing ``--data-dir``, an unusable device) before any data is loaded;
2. the data is loaded, the network built (or the ``--resume`` checkpoint loaded) and trained;
3. after training — finished, stopped by Ctrl-C (first or second), the last step's weights are
   saved (``--save``), evaluated on the test images (the figures printed are those of the saved
   weights), and the completed epochs are plotted (``--plot``).

Ctrl-C: the first stops after the current batch, the second at once (the weights go back to the
last check, at most one epoch or ``check_every`` batches earlier). Either way the command then
saves, evaluates and plots, and exits with status 130. A Ctrl-C during loading, saving or
evaluating ends the command at once, also with status 130.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from ..training.callbacks import Callback
from ..training.compiled import COMPILERS
from ..training.history import History
from ..training.loggers import logger_for
from ..version import __version__
from . import data as cli_data
from .devices import checkpoint_dtype, resolve_backend
from .files import check_checkpoint_path, check_plot_path
from .options import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CLIError,
    UsageError,
    add_backend_options,
    add_data_options,
    add_threads_option,
    count,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
)
from .text import LOSS_TITLES, describe_network, describe_optimizer, describe_schedule, figures, progress_text
from .threads import apply_threads, choose_threads, describe_threads, export_threads, mpi_world_size

LOSSES = tuple(LOSS_TITLES)
SQUARED = ("half_squared_error", "mean_squared_error")
DEFAULT_LR = {"sgd": 0.05, "adam": 0.001, "adamw": 0.001}
ARCHITECTURE_OPTIONS = ("--model", "--hidden", "--channels", "--activation", "--dropout", "--batch-norm")
MLP_ONLY = ("--activation", "--dropout", "--batch-norm")
CNN_HIDDEN = 128  # the width of the CNN's dense hidden layer unless --hidden says otherwise
OPTIMIZER_OPTIONS = ("--optimizer", "--momentum", "--nesterov", "--weight-decay")

DESCRIPTION = """\
Train a network on the training images of MNIST (or Fashion-MNIST, or the packaged mnist-mini),
then report its accuracy and loss on the test images.

Per epoch it prints the training loss and accuracy (and, with --validation N, those of N training
images held out as a validation set). The test images are used once, at the end, on the final
weights -- the weights --save writes. Ctrl-C stops after the current batch (twice: at once), then
saves, plots and reports as usual and exits with status 130."""

EPILOG = """\
examples:
  bpx train --dataset mnist-mini --epochs 3                 # offline, seconds
  bpx train --data-dir DIR --save mlp.npz --plot curves.png # full MNIST from a folder
  bpx train --data-dir DIR --save mlp.npz --resume mlp.npz  # continue an interrupted run
  mpiexec -n 4 bpx train --distributed --data-dir DIR       # data-parallel over 4 processes"""


def add_parser(sub: Any) -> None:
    """Add ``bpx train`` to the subcommands ``sub``."""
    p = sub.add_parser("train", help="train a network on MNIST and report its test accuracy",
                       description=DESCRIPTION, epilog=EPILOG)
    add_data_options(p)
    p.add_argument("--validation", type=count, default=0, metavar="N",
                   help="hold out the last N training images as a validation set, reported every epoch "
                        "(e.g. 5000; 0: none)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="train on the first N training images only")

    net = p.add_argument_group("network (with --resume: taken from the checkpoint)")
    net.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                     help="mlp: dense layers; cnn: LeNet-style, [5x5 convolution, ReLU, 2x2 max pool] per "
                          "--channels entry, then a dense hidden layer")
    net.add_argument("--hidden", type=positive_int, nargs="*", metavar="N",
                     help="hidden layer widths: the MLP's (default: 256 256; none, i.e. --hidden alone, for "
                          f"softmax regression), or the one dense layer of the CNN (default: {CNN_HIDDEN})")
    net.add_argument("--channels", type=positive_int, nargs="+", default=[16, 32], metavar="C",
                     help="CNN only: output channels of each convolution block")
    net.add_argument("--activation", choices=("relu", "leaky_relu", "tanh", "sigmoid"), default="relu",
                     help="hidden activation")
    net.add_argument("--dropout", type=fraction, default=0.0, metavar="P",
                     help="dropout rate after each hidden activation")
    net.add_argument("--batch-norm", action="store_true", help="batch normalisation before each hidden activation")
    net.add_argument("--loss", choices=LOSSES, default="softmax_cross_entropy",
                     help="the squared errors and binary cross-entropy fit one-hot rows (one output per class)")
    add_backend_options(net)

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd", help="the update rule")
    opt.add_argument("--lr", type=positive_float, metavar="LR",
                     help="base learning rate (default: 0.05 for sgd, 0.001 for adam and adamw; with --resume: "
                          "the checkpoint's)")
    opt.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum (sgd only)")
    opt.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd only)")
    opt.add_argument("--weight-decay", type=non_negative_float, default=0.0, metavar="WD",
                     help="L2 penalty (sgd, adam) or decoupled weight decay (adamw)")
    opt.add_argument("--schedule", choices=("constant", "step", "cosine"), default="cosine",
                     help="learning rate over the epochs: cosine decay to 0, step (x0.1 every third of the "
                          "epochs) or constant")
    opt.add_argument("--epochs", type=positive_int, default=10,
                     help="number of epochs (with --resume: in all, counting those already done)")
    opt.add_argument("--batch-size", type=positive_int, default=128, help="images per training step")
    opt.add_argument("--seed", type=count, default=0,
                     help="seeds the initial weights and the batch order (with --resume: the checkpoint's)")

    out = p.add_argument_group("files and running")
    out.add_argument("--save", metavar="PATH", help="write the final network and optimizer state to this "
                                                    ".npz checkpoint (also after Ctrl-C)")
    out.add_argument("--plot", metavar="PATH", help="write learning curves to this PNG/SVG/PDF (needs matplotlib)")
    out.add_argument("--log", metavar="PATH", help="write each epoch's metrics to this CSV file (JSON lines for "
                                                   ".jsonl), flushed per epoch; --resume appends to it")
    out.add_argument("--resume", metavar="CKPT", help="continue training the checkpoint written by --save, "
                                                      "with its optimizer state; give the original options")
    out.add_argument("--compile", action="store_true",
                     help="compile the training step: jax.jit (jax) or torch.compile (torch)")
    out.add_argument("--distributed", action="store_true",
                     help="data-parallel over MPI ranks: mpiexec -n 4 bpx train --distributed ...")
    add_threads_option(out)
    out.add_argument("--quiet", action="store_true", help="print only the final figures (on stdout)")


# ---------------------------------------------------------------------- checks before any work
def check_options(args: argparse.Namespace, given: set[str]) -> None:
    """Refuse combinations where an option would be ignored or cannot work (:class:`UsageError`)."""
    cli_data.check_data_options(args)
    if args.optimizer != "sgd":
        for flag in ("--momentum", "--nesterov"):
            if flag in given:
                raise UsageError(f"{flag}: only --optimizer sgd uses momentum; {args.optimizer} keeps its own "
                                 "moment estimates (drop the option)")
    if args.model == "mlp":
        if args.hidden is None:
            args.hidden = [256, 256]
        if "--channels" in given:
            raise UsageError("--channels: sets the convolutions of --model cnn; an MLP has none")
        for flag in MLP_ONLY:
            if flag in given and not args.hidden:
                raise UsageError(f"{flag}: the network has no hidden layer (--hidden with no width), so there is "
                                 "nothing to apply it to")
    else:
        for flag in MLP_ONLY:
            if flag in given:
                raise UsageError(f"{flag}: --model cnn has ReLU activations and no dropout or batch "
                                 "normalisation; this option is for --model mlp")
        if args.hidden is not None and len(args.hidden) > 1:
            raise UsageError(f"--hidden {' '.join(map(str, args.hidden))}: the CNN has one dense hidden layer; "
                             "give one width (or none)")
    if args.compile and args.distributed:
        raise UsageError("--compile and --distributed cannot be combined yet")


def check_paths(args: argparse.Namespace) -> None:
    """Fail now, not after training, when ``--save`` or ``--plot`` cannot be written."""
    if args.save:
        check_checkpoint_path(args.save)
    if args.plot:
        check_plot_path(args.plot)


# ---------------------------------------------------------------------- building
def build_network(args: argparse.Namespace, backend: Any) -> Any:
    """The network the options describe (squared-error losses get sigmoid outputs, the classic
    network; the logit losses get raw logits)."""
    from .. import architectures

    if args.model == "cnn":  # linear class scores, also for the squared errors
        hidden = CNN_HIDDEN if args.hidden is None else (args.hidden[0] if args.hidden else None)
        return architectures.cnn(channels=args.channels, hidden=hidden, backend=backend, seed=args.seed)
    output = "sigmoid" if args.loss in SQUARED else None
    return architectures.mlp([784, *args.hidden, 10], args.activation, output, dropout=args.dropout,
                             batch_norm=args.batch_norm, backend=backend, seed=args.seed)


def make_optimizer(args: argparse.Namespace) -> Any:
    """The optimizer the options describe."""
    from ..optim import SGD, get_optimizer

    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    if args.optimizer == "sgd":
        return SGD(lr=lr, momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay)
    return get_optimizer(args.optimizer, lr=lr, weight_decay=args.weight_decay)


def make_schedule(name: str, epochs: int) -> Any:
    """``None`` (constant), ``StepLR`` (×0.1 every third of the epochs) or ``CosineLR``."""
    from ..optim import CosineLR, StepLR

    if name == "step":
        return StepLR(max(1, epochs // 3), 0.1)
    return CosineLR(epochs) if name == "cosine" else None


# ---------------------------------------------------------------------- resuming
def load_for_resume(args: argparse.Namespace, given: set[str], backend: Any) -> tuple[Any, Any]:
    """The network and optimizer saved in ``--resume``; explicit options that contradict them are
    a :class:`UsageError` (the same options as the original run are fine)."""
    from ..backend import get_backend
    from ..io.checkpoint import read_header
    from ..sequential import load

    path = args.resume
    try:
        header = read_header(path)
    except FileNotFoundError:
        raise CLIError(f"--resume {path}: no such file") from None
    if header.get("optimizer") is None:
        raise CLIError(f"--resume {path}: the checkpoint holds no optimizer state (it was saved without one), so "
                       "training cannot continue where it stopped; bpx train --save writes checkpoints with it")
    net, optimizer = load(path, backend=backend, with_optimizer=True)
    conflicts = [flag for flag in ARCHITECTURE_OPTIONS if flag in given]
    if conflicts:
        wanted = build_network(args, get_backend("numpy", None, backend.master_dtype_name))
        if wanted.config() != net.config():
            raise UsageError(f"{'/'.join(conflicts)}: describe {describe_network(wanted)}, but the checkpoint "
                             f"given to --resume holds {describe_network(net)}; leave them out when resuming")
    conflicts = [flag for flag in OPTIMIZER_OPTIONS if flag in given]
    if conflicts:
        wanted = make_optimizer(args)
        mine = {k: v for k, v in wanted.hyperparameters().items() if k != "lr"}
        saved = {k: v for k, v in optimizer.hyperparameters().items() if k != "lr"}
        if type(wanted) is not type(optimizer) or mine != saved:
            raise UsageError(f"{'/'.join(conflicts)}: the checkpoint given to --resume continues with its own "
                             f"optimizer, {describe_optimizer(optimizer)} (lr aside); leave them out when resuming")
    if "--loss" in given and net.loss is not None and net.loss.name != args.loss:
        raise UsageError(f"--loss {args.loss}: the checkpoint given to --resume was trained with {net.loss.name}")
    return net, optimizer


# ---------------------------------------------------------------------- the run
class Announcer(Callback):
    """Prints the header when training really starts (the data is on the device), and keeps a
    reference to the run's :class:`History` (still there after a second Ctrl-C)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.history = History()

    def on_train_begin(self, trainer: Any) -> None:
        self.history = trainer.history
        if self.lines and trainer.is_main:
            print("\n".join(self.lines), file=sys.stderr, flush=True)


def say(args: argparse.Namespace, message: str) -> None:
    """A progress message on stderr, unless ``--quiet``."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, given: set[str]) -> int:
    """``bpx train``; returns the exit status (0, or 130 after Ctrl-C)."""
    check_options(args, given)
    check_paths(args)
    main_rank = is_main_rank(args)
    threads = choose_threads(args.threads)
    export_threads(threads)
    dtype = args.dtype
    if args.resume and dtype is None:
        dtype = checkpoint_dtype(args.resume)
    backend = resolve_backend(args, dtype or "float32")
    apply_threads(threads)
    if args.compile and backend.name not in COMPILERS:
        raise UsageError(f"--compile: only {' and '.join(COMPILERS)} compile steps; this run uses {backend.name}")
    notes_on_mpi(args, main_rank)

    if args.resume:
        net, optimizer = load_for_resume(args, given, backend)
    else:
        net, optimizer = build_network(args, backend), make_optimizer(args)
    loss = net.loss.name if args.resume and net.loss is not None else args.loss
    metrics = ["accuracy"]  # every CLI loss trains on the 10 classes: arg-max (or subset) accuracy
    data = cli_data.training_data(args, quiet=args.quiet or not main_rank)
    x = cli_data.shaped_for(net, data.train[0], "the training images")
    t = cli_data.targets_for(loss, data.train[1])
    validation = None
    if data.validation is not None:
        validation = (cli_data.shaped_for(net, data.validation[0], "the validation images"),
                      cli_data.targets_for(loss, data.validation[1]))

    per_epoch = math.ceil(len(x) / args.batch_size)
    done = optimizer.iterations
    first_epoch = done // per_epoch
    schedule = make_schedule(args.schedule, args.epochs)
    seed = args.seed
    if args.resume:
        if first_epoch >= args.epochs:
            raise UsageError(f"--epochs {args.epochs}: the checkpoint given to --resume has already been trained "
                             f"for {progress_text(done, per_epoch)}; --epochs counts them all, so give more")
        if "--lr" in given:  # else the checkpoint's optimizer continues its schedule from its base rate
            optimizer.base_lr = optimizer.lr = float(args.lr)
        seed = args.seed if "--seed" in given else net.seed
    lines = [] if args.quiet else header(args, net, loss, optimizer, schedule, data, len(x), per_epoch, threads,
                                         done)
    announcer = Announcer(lines)
    logs = [logger_for(args.log, append=bool(args.resume))] if args.log else []
    start = time.perf_counter()
    try:
        history = net.fit(x, t, loss=loss, optimizer=optimizer, epochs=args.epochs, initial_epoch=first_epoch,
                          batch_size=args.batch_size, validation_data=validation, seed=seed,
                          callbacks=[announcer, *logs],
                          lr_schedule=schedule, verbose=0 if args.quiet else 1,
                          compile=args.compile, distributed=args.distributed, metrics=metrics)
    except KeyboardInterrupt:  # the second Ctrl-C: fit restored the weights of the last check
        history = announcer.history
        history.interrupted = True
        say(args, "stopped at once: the weights are those of the last check")
    seconds = time.perf_counter() - start
    if not main_rank:
        return EXIT_INTERRUPTED if history.interrupted else EXIT_OK
    if optimizer.iterations == done:
        say(args, "interrupted before the first training step: nothing to save or report")
        return EXIT_INTERRUPTED
    return finish(args, net, optimizer, loss, history, data, per_epoch, done, first_epoch * per_epoch, seconds)


def header(args: argparse.Namespace, net: Any, loss: str, optimizer: Any, schedule: Any,
           data: cli_data.TrainingData, n_train: int, per_epoch: int, threads: Any, done: int) -> list[str]:
    """The lines printed when training starts: what is trained, on what data, where."""
    first = [f"bpx {__version__}", describe_network(net), LOSS_TITLES[loss], describe_optimizer(optimizer),
             describe_schedule(args.schedule, schedule, args.epochs)]
    if args.resume:
        first.append(f"resuming {args.resume} after {progress_text(done, per_epoch)}")
        if done % per_epoch:
            first.append(f"epoch {done // per_epoch + 1} restarts from its first batch")
    parts = [f"{n_train:,} training images of {args.dataset} in {per_epoch:,} batches of {args.batch_size}"]
    if data.validation is not None:
        parts.append(f"{len(data.validation[0]):,} validation images")
    parts.append(f"{len(data.test[0]):,} test images for the final figures")
    where = [net.backend.describe(), describe_threads(threads)]
    if args.distributed:
        size = mpi_world_size() or 1
        where.append(f"{size} MPI rank{'s' if size > 1 else ''}, global batch {args.batch_size}")
    return [" · ".join(first), "data: " + " · ".join(parts), "on: " + " · ".join(where)]


def finish(args: argparse.Namespace, net: Any, optimizer: Any, loss: str, history: History,
           data: cli_data.TrainingData, per_epoch: int, done: int, start: int, seconds: float) -> int:
    """Save, evaluate the saved weights on the test images, plot, print the figures. ``done``: the
    steps of the checkpoint resumed (0 for a new run); ``start``: the step this run started from
    (``done`` rounded down to whole epochs: an interrupted epoch restarts)."""
    stage = "saving"
    try:
        if args.save:
            path = net.save(args.save, optimizer)
            say(args, f"saved {path}")
        stage = "evaluating"
        xt = cli_data.shaped_for(net, data.test[0], "the test images")
        result = net.evaluate(xt, cli_data.targets_for(loss, data.test[1]), loss=loss, metrics=["accuracy"])
        stage = "plotting"
        if args.plot:
            plot(args, history, start // per_epoch, f"{describe_network(net)} on {args.dataset}: "
                                                   f"{figures(result, loss)}")
    except KeyboardInterrupt:
        lost = f"; {args.save} was not written" if stage == "saving" else ""
        print(f"bpx train: interrupted while {stage}{lost}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    steps = optimizer.iterations - done  # in this run
    total = progress_text(start + steps, per_epoch)
    this_run = f" ({progress_text(steps, per_epoch)} in this run)" if args.resume else ""
    status = "  (interrupted)" if history.interrupted else ""
    print(f"{figures(result, loss)}  after {total}{this_run}  {seconds:.1f}s  [{net.backend.describe()}]{status}",
          flush=True)
    return EXIT_INTERRUPTED if history.interrupted else EXIT_OK


def plot(args: argparse.Namespace, history: History, epochs_before: int, title: str) -> None:
    """Plot the completed epochs (an interrupted epoch is left out)."""
    from ..plotting import plot_history

    complete = history.epochs - (1 if history.partial_epoch else 0)
    if complete < 1:
        say(args, f"no plot: no epoch was completed ({args.plot} not written)")
        return
    kept = History(metrics={key: values[:complete] for key, values in history.metrics.items()})
    plot_history(kept, args.plot, title=title, first_epoch=epochs_before + 1)
    say(args, f"wrote {args.plot}")


# ---------------------------------------------------------------------- helpers
def is_main_rank(args: argparse.Namespace) -> bool:
    """True unless this is an MPI rank other than 0 of a ``--distributed`` run."""
    if not args.distributed:
        return True
    from ..training.distributed import mpi

    return bool(mpi().COMM_WORLD.Get_rank() == 0)


def notes_on_mpi(args: argparse.Namespace, main_rank: bool) -> None:
    """Warn about an MPI launch without ``--distributed`` (every rank would train alone) and the reverse."""
    size = mpi_world_size()
    if size is not None and size > 1 and not args.distributed:
        print(f"bpx train: warning: launched as one of {size} MPI ranks without --distributed: every rank trains "
              "its own copy on all the data; add --distributed to share the work", file=sys.stderr, flush=True)
    elif args.distributed and size is None and main_rank and not args.quiet:
        print("bpx train: note: --distributed outside mpiexec runs as a single rank", file=sys.stderr, flush=True)
