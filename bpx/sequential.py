"""``Sequential``: a :class:`bpx.nn.Network` you can train, evaluate, predict with and save, and
:func:`load` for its checkpoints.

This is the class users build; it adds the training loop (:mod:`bpx.training`) and checkpoints
(:mod:`bpx.io`) to the forward/backward core of :mod:`bpx.nn`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

from .backend import Backend
from .errors import BpxTypeError, BpxValueError, ShapeError
from .io import load as load_network
from .io import save as save_network
from .nn.losses import Loss
from .nn.network import Network
from .optim.optimizers import Optimizer, get_optimizer
from .optim.schedules import Schedule
from .training.callbacks import Callback
from .training.history import History
from .training.loop import Trainer, predict
from .training.step import train_step


class Sequential(Network):
    """Layers applied in order on one backend/device/dtype, with training and checkpoints.

    See :class:`bpx.nn.Network` for the constructor (``layers``, ``backend``, ``device``,
    ``dtype``, ``seed``, ``input_shape``). Inputs are ``(n_samples, *input_shape)``; outputs
    ``(n_samples, *output_shape)`` (logits for the logit losses).
    """

    # ------------------------------------------------------------------ one step
    def train_step(self, x: Any, targets: Any, loss: str | Loss, optimizer: str | Optimizer) -> Any:
        """One forward/backward/update on the batch ``(x, targets)``. Returns the loss before the
        update as a 0-d array on the device (no host synchronisation); each trainable parameter's
        ``grad`` then holds this step's gradient. Host targets are validated; class labels that
        already live on the device are not range-checked here (see :class:`bpx.SoftmaxCrossEntropy`).
        """
        loss = self.resolve_loss(loss)
        optimizer = self.resolve_optimizer(optimizer)
        x = self.prepare_inputs(x)
        targets = loss.prepare_targets(targets, self.backend, self.output_shape)
        _check_batch(x, targets)
        return train_step(self, x, targets, loss, optimizer).loss

    # ------------------------------------------------------------------ datasets
    def fit(self, x: Any, targets: Any, *, loss: str | Loss, optimizer: str | Optimizer, epochs: int = 1,
            batch_size: int = 32, validation_data: tuple[Any, Any] | None = None, shuffle: bool = True,
            seed: int | None = None, callbacks: Sequence[Callback] = (), lr_schedule: Schedule | None = None,
            check_every: int | None = None, verbose: int = 1, compile: bool = False,
            distributed: bool | Any = False, metrics: Sequence[str] | None = None,
            initial_epoch: int = 0) -> History:
        """Train on ``(x, targets)`` for ``epochs`` passes of minibatches of ``batch_size``.

        ``x`` is ``(n, *input_shape)``; ``targets`` are what ``loss`` compares the outputs with
        (class labels ``(n,)`` or rows ``(n, k)``). The data moves to the device once; ``seed``
        fixes the batch order (same seed, same batches on every backend; ``None`` derives it from
        the network's seed and step count, so a script is reproducible). Metrics are read back once
        per epoch, or every ``check_every`` batches, which also bounds how late a NaN is noticed.
        ``metrics``: ``None`` reports accuracy for the classification losses only; pass
        ``["accuracy"]`` to measure it for a squared-error loss on one-hot rows, ``[]`` for none.
        ``verbose``: 0 silent; 1 a progress bar per epoch on a terminal (a plain line per epoch
        elsewhere); 2 bars kept. ``compile=True`` compiles the step (JAX: whole chunks of
        batches under one ``jax.jit``; PyTorch: ``torch.compile``), cached across calls;
        ``distributed=True`` (or a :class:`bpx.training.distributed.Communicator`) trains
        data-parallel over the MPI ranks of ``mpiexec``. The network remembers ``loss`` and the
        metrics (``evaluate`` uses them). Inside ``fit`` the optimizer works in the gradient
        buffer, so afterwards each ``grad`` is ``None``. ``initial_epoch=k`` continues a run
        (e.g. from ``bpx.load(path, with_optimizer=True)``) at epoch k of ``epochs`` in all: the
        schedule and, for the same ``seed``, the batch order are those the whole run would have had.

        Returns the :class:`History`. Ctrl-C stops after the current batch and returns it too
        (``history.interrupted``). On failure the network and optimizer are left as documented in
        :meth:`bpx.training.Trainer.fit`: never with non-finite parameters.
        """
        comm = None
        if distributed is not False and distributed is not None:
            from .training.distributed import Communicator

            if distributed is not True and not isinstance(distributed, Communicator):
                raise BpxTypeError(f"distributed must be True, False or a bpx Communicator, got {distributed!r}")
            comm = Communicator() if distributed is True else distributed
        trainer = Trainer(self, loss, self.resolve_optimizer(optimizer), comm, metrics)
        return trainer.fit(x, targets, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                           shuffle=shuffle, seed=seed, callbacks=callbacks, lr_schedule=lr_schedule,
                           check_every=check_every, verbose=verbose, compile=compile, initial_epoch=initial_epoch)

    def evaluate(self, x: Any, targets: Any, loss: str | Loss | None = None, batch_size: int = 1024,
                 metrics: Sequence[str] | None = None) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``(x, targets)`` in inference mode. ``loss`` and
        ``metrics`` default to those the network was trained with (accuracy only where it means
        something: see :mod:`bpx.training.metrics`)."""
        return Trainer(self, loss, None, metrics=metrics).evaluate(x, targets, batch_size)

    def predict(self, x: Any, batch_size: int | None = 1024) -> Any:
        """Outputs ``(n, *output_shape)`` on the device, in inference mode, ``batch_size`` rows at a
        time (``None``: all at once): logits for the logit losses (softmax or sigmoid them for
        probabilities), class scores otherwise. Use :meth:`predict_classes` for class decisions and
        :func:`bpx.to_host` for NumPy."""
        return predict(self, x, batch_size)

    def predict_classes(self, x: Any, batch_size: int | None = 1024) -> Any:
        """Class decisions on the device: the arg-max output ``(n,)`` (integer labels), or for a
        network trained with binary cross-entropy the yes/no decisions ``(n, k)`` (booleans,
        logit > 0)."""
        outputs = self.predict(x, batch_size)
        if len(self.output_shape) != 1:
            raise ShapeError(f"predict_classes needs outputs shaped (n, k), the network's are (n, {self.output_shape})")
        if self.loss is not None and self.loss.accuracy == "multi_label":
            return outputs > 0
        return self.xp.argmax(outputs, axis=1)

    def compute_loss(self, x: Any, targets: Any, loss: str | Loss | None = None) -> Any:
        """The loss of the whole of ``(x, targets)`` as a 0-d device array, in inference mode
        (no update; ``loss`` defaults to the one the network was trained with)."""
        loss = self.resolve_loss(loss)
        outputs = self.predict(x)
        targets = loss.prepare_targets(targets, self.backend, self.output_shape)
        _check_batch(outputs, targets)
        return loss.value(outputs, targets, self.context(training=False))

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str], optimizer: Optimizer | None = None,
             format: str | None = None) -> Path:
        """Write a checkpoint (architecture, weights, loss, optionally the optimizer); see :mod:`bpx.io`.
        ``format``: ``"npz"`` or ``"safetensors"``; ``None`` picks safetensors for a ``.safetensors`` path."""
        return save_network(self, path, optimizer, format)

    # ------------------------------------------------------------------ optimizers by name
    def resolve_optimizer(self, optimizer: str | Optimizer) -> Optimizer:
        """An optimizer instance; a name gives one default-configured instance per network."""
        if not isinstance(optimizer, str):
            return get_optimizer(optimizer)  # an Optimizer as is; anything else raises BpxTypeError
        cache = self.__dict__.setdefault("_named_optimizers", {})
        if optimizer not in cache:
            cache[optimizer] = get_optimizer(optimizer)
        return cache[optimizer]


def _check_batch(x: Any, targets: Any) -> None:
    if x.shape[0] != targets.shape[0]:
        raise ShapeError(f"x has {x.shape[0]} samples but targets has {targets.shape[0]}")
    if x.shape[0] == 0:
        raise BpxValueError("x has 0 samples: a training step needs at least one")


@overload
def load(path: str | os.PathLike[str], backend: str | Backend | None = ..., device: Any = ...,
         dtype: Any = ..., *, with_optimizer: Literal[False] = ...) -> Sequential: ...


@overload
def load(path: str | os.PathLike[str], backend: str | Backend | None = ..., device: Any = ...,
         dtype: Any = ..., *, with_optimizer: Literal[True]) -> tuple[Sequential, Optimizer]: ...


def load(path: str | os.PathLike[str], backend: str | Backend | None = None, device: Any = None,
         dtype: Any = None, *, with_optimizer: bool = False) -> Sequential | tuple[Sequential, Optimizer]:
    """Rebuild the :class:`Sequential` saved at ``path`` on ``backend``/``device`` (see
    :func:`bpx.get_backend`; where it was saved does not matter). ``dtype`` defaults to the saved
    dtype. ``with_optimizer=True`` returns ``(net, optimizer)`` to continue training exactly.
    Reads ``.npz`` and safetensors checkpoints, told apart by their first bytes (see :mod:`bpx.io`).
    Raises :class:`bpx.CheckpointError` for an invalid file and ``FileNotFoundError`` for none."""
    return load_network(path, backend, device, dtype, with_optimizer=with_optimizer,  # type: ignore[return-value]
                        network_class=Sequential)

