"""``Sequential``: a stack of layers on one backend, with forward, backward and train_step.

The three phases of backpropagation, each written once against the Array API:
``forward`` (layer by layer), ``backward`` (δ flows right to left; each layer stores
∂E/∂param) and the optimizer's update. All parameters are updated *simultaneously* from the
gradients of the same forward pass (true gradient descent).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import init as initializers
from .backend import Backend, get_backend, to_host
from .callbacks import Callback
from .layers import Dense, Layer, Parameter, Sigmoid, Softmax, layer_from_config
from .losses import BinaryCrossEntropy, Loss, SoftmaxCrossEntropy, get_loss
from .optim import Optimizer, get_optimizer
from .schedules import Schedule
from .train import History, Trainer, predict


class Sequential:
    """Layers applied in order on one backend/device/dtype.

    Args:
        layers: the layers; the first must be a ``Dense`` (it fixes the input width).
        backend: a name (``numpy``, ``cupy``, ``torch``, ``jax``, ``array_api_strict``,
            ``auto``), a :class:`Backend`, or ``None`` for ``$BPX_BACKEND`` / numpy.
        device, dtype: see :func:`bpx.get_backend` (dtype default float32).
        seed: seed of the host generator that draws initial weights (same seed, same weights
            on every backend); ``None`` draws fresh entropy.

    Inputs are ``(n_samples, n_features)``. Host data (lists, NumPy arrays) is moved to the
    device; integer and boolean inputs are cast to the network's float dtype (their values
    are kept as they are, e.g. pixels stay 0..255).
    """

    def __init__(self, *layers: Layer, backend: str | Backend | None = None, device: Any = None,
                 dtype: Any = None, seed: int | None = None) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] is a {type(layer).__name__}, not a bpx layer")
        if not isinstance(layers[0], Dense):
            raise ValueError(f"the first layer must be Dense (it fixes the input width), got {layers[0]!r}")
        self.backend = get_backend(backend, device, dtype)
        self.layers = list(layers)
        self.seed = seed
        width = layers[0].in_features
        rng = initializers.make_rng(seed)
        for i, layer in enumerate(self.layers):
            layer.name = f"layers[{i}] {type(layer).__name__}"
            width = layer.output_features(width)
            layer.build(self.backend, rng)
        self.in_features = layers[0].in_features
        self.out_features = width
        self._resolved: dict[tuple[str, Any], Any] = {}  # loss/optimizer names resolved once
        self._parameters = [p for layer in self.layers for p in layer.parameters()]

    # ------------------------------------------------------------------ structure
    @property
    def xp(self) -> Any:
        return self.backend.xp

    def parameters(self) -> list[Parameter]:
        """All parameters, layer by layer (weight before bias), trainable or not."""
        return list(self._parameters)

    def named_parameters(self) -> dict[str, Parameter]:
        """``{"layers.0.weight": Parameter, ...}`` in layer order."""
        return {f"layers.{i}.{p.name}": p for i, layer in enumerate(self.layers) for p in layer.parameters()}

    @property
    def n_parameters(self) -> int:
        total = 0
        for p in self._parameters:
            size = 1
            for d in p.shape:
                size *= d
            total += size
        return total

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return (f"Sequential(\n    {inner},\n    backend={self.backend.name!r}, "
                f"device={str(self.backend.device)!r}, dtype={self.backend.dtype_name!r})")

    # ------------------------------------------------------------------ inputs
    def prepare_inputs(self, x: Any, name: str = "x") -> Any:
        """``x`` as a float ``(n, in_features)`` array on the network's device (see class doc)."""
        backend, xp = self.backend, self.backend.xp
        x = backend.asarray(x, name=name)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            hint = ""
            if x.ndim == 1:
                hint = (f"; for one sample use shape (1, {x.shape[0]})" if x.shape[0] == self.in_features
                        else "")
            raise ValueError(f"{name}: expected shape (n_samples, {self.in_features}) for the first "
                             f"Dense layer, got {tuple(x.shape)}{hint}")
        if x.dtype != backend.dtype:
            if not xp.isdtype(x.dtype, ("real floating", "integral", "bool")):
                raise ValueError(f"{name}: inputs must be real numbers, got dtype {x.dtype}")
            x = xp.astype(x, backend.dtype)
        return x

    def prepare_targets(self, t: Any, loss: str | Loss) -> Any:
        """Targets converted and validated for ``loss`` (see :meth:`Loss.prepare_targets`)."""
        return self.resolve_loss(loss).prepare_targets(t, self.backend, self.out_features)

    # ------------------------------------------------------------------ the three phases
    def forward(self, x: Any) -> Any:
        """Outputs ``(n, out_features)`` for inputs ``x`` ``(n, in_features)``."""
        return self._forward(self.prepare_inputs(x))

    def _forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output: Any, input_grad: bool = False) -> Any:
        """Propagate ∂E/∂y ``(n, out_features)`` back through the layers of the last
        ``forward``; each trainable parameter receives its ``grad``. Returns ∂E/∂x when
        ``input_grad`` is true (it is skipped otherwise: the data needs no gradient).
        ``grad_output`` may be overwritten (layers work in place where they can)."""
        g = grad_output
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            g = self.layers[i].backward(g, input_grad=input_grad or i > 0)
        return g

    def train_step(self, x: Any, t: Any, loss: str | Loss, optimizer: str | Optimizer) -> Any:
        """One forward/backward/update on the batch ``(x, t)``. Returns the loss before the
        update as a 0-d array on the device (no host synchronisation)."""
        loss = self.resolve_loss(loss)
        optimizer = self.resolve_optimizer(optimizer)
        x = self.prepare_inputs(x)
        t = loss.prepare_targets(t, self.backend, self.out_features)
        return self._train_step(x, t, loss, optimizer)[0]

    def _train_step(self, x: Any, t: Any, loss: Loss, optimizer: Optimizer,
                    reuse_grads: bool = False) -> tuple[Any, Any]:
        """``train_step`` on prepared device arrays; returns ``(loss, outputs before the update)``.
        ``reuse_grads``: see :meth:`Optimizer.step`."""
        value, y = self._gradients(x, t, loss)
        optimizer.step(self._parameters, reuse_grads)
        return value, y

    def _gradients(self, x: Any, t: Any, loss: Loss) -> tuple[Any, Any]:
        """Forward and backward on prepared arrays: sets every trainable ``grad``; returns
        ``(loss, outputs)``."""
        y = self._forward(x)
        loss.check_batch(y, t)
        value, grad = loss.value_and_grad(y, t, self.backend.xp)
        self.backward(grad)
        return value, y

    # ------------------------------------------------------------------ training on datasets
    def fit(self, x: Any, y: Any, *, loss: str | Loss, optimizer: str | Optimizer, epochs: int = 1,
            batch_size: int = 32, validation_data: tuple[Any, Any] | None = None, shuffle: bool = True,
            seed: int | None = None, callbacks: Sequence[Callback] = (), lr_schedule: Schedule | None = None,
            check_every: int | None = None, verbose: int = 1, compile: bool = False,
            distributed: bool | Any = False) -> History:
        """Train on ``(x, y)`` for ``epochs`` passes of minibatches of ``batch_size``.

        ``x`` is ``(n, in_features)``; ``y`` are targets for ``loss`` (class labels ``(n,)`` or
        rows ``(n, out_features)``). The data moves to the device once; ``seed`` fixes the batch
        order (same seed, same batches on every backend). Metrics are read back once per epoch
        (or every ``check_every`` batches, which also bounds how late a NaN is noticed).
        ``verbose``: 0 silent, 1 a progress bar per epoch and a line per epoch, 2 bars kept.
        The optimizer updates in the gradient buffers, so after ``fit`` each ``grad`` is ``None``.
        ``compile=True`` (JAX only) runs each step through ``jax.jit`` (see :mod:`bpx.compile`).
        ``distributed=True`` (or a :class:`bpx.distributed.Communicator`) trains data-parallel over
        the MPI ranks of ``mpiexec`` (see :mod:`bpx.distributed`); every rank gets the same history.
        Returns the :class:`History`; Ctrl-C stops at a batch boundary and returns it too.
        """
        comm = None
        if distributed is not False and distributed is not None:
            from .distributed import Communicator

            comm = Communicator() if distributed is True else distributed
        trainer = Trainer(self, loss, optimizer, comm)
        return trainer.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                           shuffle=shuffle, seed=seed, callbacks=callbacks, lr_schedule=lr_schedule,
                           check_every=check_every, verbose=verbose, compile=compile)

    def evaluate(self, x: Any, y: Any, loss: str | Loss = "softmax_cross_entropy",
                 batch_size: int = 1024) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``(x, y)`` (accuracy when meaningful)."""
        return Trainer(self, loss, "sgd").evaluate(x, y, batch_size)

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Outputs ``(n, out_features)`` on the device (logits for the logit losses)."""
        return predict(self, x, batch_size)

    def save(self, path: str | Path, optimizer: Optimizer | None = None) -> Path:
        """Write a checkpoint (architecture, weights, optionally optimizer state); see :mod:`bpx.io`."""
        from .io import save

        return save(self, path, optimizer)

    def loss(self, x: Any, t: Any, loss: str | Loss) -> Any:
        """The loss of the whole of ``(x, t)`` as a 0-d device array (no update)."""
        loss = self.resolve_loss(loss)
        y = self.forward(x)
        t = loss.prepare_targets(t, self.backend, self.out_features)
        loss.check_batch(y, t)
        return loss.value(y, t, self.backend.xp)

    # ------------------------------------------------------------------ name resolution
    def resolve_loss(self, loss: str | Loss) -> Loss:
        """A loss instance for ``loss``, checked against the last layer: the logit losses
        must not follow a ``Softmax``/``Sigmoid`` layer (that would apply it twice)."""
        key = ("loss", loss if isinstance(loss, str) else id(loss))
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        resolved = get_loss(loss)
        last = self.layers[-1]
        if (isinstance(resolved, SoftmaxCrossEntropy) and isinstance(last, Softmax)) or \
                (isinstance(resolved, BinaryCrossEntropy) and isinstance(last, Sigmoid)):
            raise ValueError(f"{type(resolved).__name__} takes logits and applies "
                             f"{type(last).__name__.lower()} itself; remove the final {type(last).__name__} layer")
        if isinstance(loss, str):
            self._resolved[key] = resolved
        return resolved

    def resolve_optimizer(self, optimizer: str | Optimizer) -> Optimizer:
        """An optimizer instance; a name gives one default-configured instance per network."""
        if isinstance(optimizer, Optimizer):
            return optimizer
        key = ("optimizer", optimizer)
        if key not in self._resolved:
            self._resolved[key] = get_optimizer(optimizer)
        return self._resolved[key]

    # ------------------------------------------------------------------ architecture and weights
    def config(self) -> dict[str, Any]:
        """The architecture as JSON-serialisable data (no weights)."""
        return {"layers": [{"type": type(layer).__name__, **layer.config()} for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any], backend: str | Backend | None = None, device: Any = None,
                    dtype: Any = None, seed: int | None = None) -> Sequential:
        """Build a network from :meth:`config` output (weights freshly initialised)."""
        try:
            specs = config["layers"]
            layers = [layer_from_config(spec["type"], {k: v for k, v in spec.items() if k != "type"})
                      for spec in specs]
        except (KeyError, TypeError) as err:
            raise ValueError(f"invalid network config: {err!r}") from None
        return cls(*layers, backend=backend, device=device, dtype=dtype, seed=seed)

    def state_dict(self) -> dict[str, Any]:
        """Parameter values copied to host NumPy arrays, keyed as in :meth:`named_parameters`."""
        return {name: to_host(p.value).copy() for name, p in self.named_parameters().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set every parameter from ``state`` (host or same-backend arrays), checking names and shapes."""
        params = self.named_parameters()
        missing, unexpected = params.keys() - state.keys(), state.keys() - params.keys()
        if missing or unexpected:
            raise ValueError(f"state does not match the network: missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)}")
        values = {}
        for name, p in params.items():
            values[name] = initializers.host_values(state[name], p.shape, name)
        for name, p in params.items():
            p.value = self.backend.asarray(values[name], self.backend.dtype, copy=True)
            p.grad = None

    def to(self, backend: str | Backend | None = None, device: Any = None, dtype: Any = None) -> Sequential:
        """A copy of this network on another backend/device/dtype (weights copied through the
        host; frozen parameters stay frozen). ``dtype=None`` keeps the current dtype."""
        if dtype is None and not isinstance(backend, Backend):
            dtype = self.backend.dtype_name
        clone = Sequential(*(copy.copy(layer) for layer in self.layers), backend=backend, device=device,
                           dtype=dtype, seed=0)
        clone.load_state_dict(self.state_dict())
        for mine, theirs in zip(self._parameters, clone._parameters, strict=True):
            theirs.trainable = mine.trainable
        return clone
