"""``Network``: layers applied in order on one backend, with forward and backward passes.

Two of the three phases of backpropagation live here, written once against the Array API:
``forward`` (layer by layer, each saving what its backward needs) and ``backward`` (δ flows
right to left; each layer adds ∂E/∂param to a :class:`Gradients` sink). The third phase, the
update, belongs to :mod:`bpx.optim`; :func:`bpx.training.train_step` joins the three.

A layer object may appear at several positions (weight tying, e.g. ``Network(d, Tanh(), d)``):
its parameters are listed once and their gradient is the sum over the uses. A layer belongs to
one network only.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..backend import Backend, get_backend
from ..checks import check_bool
from ..errors import BpxError, BpxTypeError, BpxValueError, ShapeError
from ..host.arrays import as_host_array, check_representable, finite_or_raise, is_host
from ..host.init import check_seed, fresh_seed, host_values, make_rng
from .layer import Context, Layer, layer_from_config, type_name
from .losses import Loss, get_loss
from .parameter import Buffer, Gradients, LossScale, Parameter, ParameterStore, check_value_count

N = TypeVar("N", bound="Network")

#: Which network each layer belongs to (a layer cannot serve two networks).
_OWNERS: weakref.WeakKeyDictionary[Layer, weakref.ref[Network]] = weakref.WeakKeyDictionary()


class Observer(Protocol):
    """Sees every array that flows through a pass (explain mode records a step with one)."""

    def forward(self, position: int, layer: Layer, x: Any, y: Any, saved: Any) -> None: ...

    def backward(self, position: int, layer: Layer, grad_y: Any) -> None: ...


@dataclass
class ForwardPass:
    """The outputs of a forward pass and what each position saved for the backward pass."""

    outputs: Any
    saved: list[Any]


class Network:
    """Layers applied in order on one backend/device/dtype (see the module docstring).

    Args:
        layers: the layers (or one list of them).
        backend: a name (``numpy``, ``cupy``, ``torch``, ``jax``, ``array_api_strict``,
            ``auto``), a :class:`Backend`, or ``None`` for ``$BPX_BACKEND`` / numpy.
        device, dtype: see :func:`bpx.get_backend` (dtype default float32).
        seed: seeds the initial weights (drawn on the host: same seed, same weights on every
            backend) and everything random the network does later (dropout masks, the default
            batch order of ``fit``). ``None`` draws a seed from OS entropy; ``net.seed`` tells it.
        input_shape: the per-sample input shape, e.g. ``(784,)`` or ``(1, 28, 28)``; inferred
            from a first ``Dense`` layer when not given.

    Inputs are ``(n_samples, *input_shape)``. Host data (lists, NumPy arrays) is moved to the
    device; integer and boolean inputs are cast to the network's float dtype (their values are
    kept as they are, e.g. pixels stay 0..255).
    """

    def __init__(self, *layers: Layer | Sequence[Layer], backend: str | Backend | None = None, device: Any = None,
                 dtype: Any = None, seed: int | None = None, input_shape: Sequence[int] | None = None) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise BpxValueError(f"{type(self).__name__} needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise BpxTypeError(f"layers[{i}] is a {type(layer).__name__}, not a bpx layer")
        self.layers: list[Layer] = list(layers)  # type: ignore[arg-type]
        self._check_owners()
        self.backend = get_backend(backend, device, dtype)
        seed = check_seed(seed)
        self.seed: int = fresh_seed() if seed is None else seed
        self.input_shape, self.shapes = self._infer_shapes(input_shape)
        self.output_shape = self.shapes[-1]
        self.unique_layers = list(dict.fromkeys(self.layers))
        self._positions = {layer: i for i, layer in reversed(list(enumerate(self.layers)))}  # first use
        names = {p: name for name, p in self.named_parameters().items()}
        rng = make_rng(self.seed)
        try:
            initial = {p: p.initial_value(rng) for p in names}
        except BpxError as err:
            raise type(err)(f"{_owner_of(err, names)}{err}") from None
        for layer in self.unique_layers:
            layer.build(self.shapes[self._positions[layer]], self.backend)
        self.store = ParameterStore(self.backend, list(names), initial, names)
        #: Mixed precision's dynamic loss scale (``None`` in float32/float64).
        self.loss_scale = LossScale(1.0 if self.backend.dtype_name == "bfloat16" else 2.0**15) \
            if self.backend.mixed else None
        if self.loss_scale is not None:
            for buffer in self.loss_scale.buffers():
                buffer.build(self.backend)
        #: The loss the network was last trained (or configured) with; ``evaluate`` uses it.
        self.loss: Loss | None = None
        #: The metrics ``fit`` reported (``["accuracy"]`` or ``[]``), reused by ``evaluate``.
        self.metrics: list[str] | None = None
        #: Training steps taken so far (keys random masks; saved in checkpoints).
        self.step_count = 0
        #: Complete epochs ``fit`` has trained (saved in checkpoints: where a resumed run starts).
        self.epochs_trained = 0
        self._cache: dict[Any, Any] = {}
        for layer in self.unique_layers:
            _OWNERS[layer] = weakref.ref(self)

    # ------------------------------------------------------------------ construction helpers
    def _check_owners(self) -> None:
        for i, layer in enumerate(self.layers):
            ref = _OWNERS.get(layer)
            owner = ref() if ref is not None else None
            if owner is not None and owner is not self:
                raise BpxValueError(f"layers[{i}] ({type(layer).__name__}) already belongs to another network; a layer "
                                    "serves one network (use a new layer, or copy a network with net.to())")

    def _infer_shapes(self, input_shape: Sequence[int] | None) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
        if input_shape is None:
            inferred = self.layers[0].input_shape()
            if inferred is None:
                first = type(self.layers[0]).__name__
                raise ShapeError(f"cannot infer the input shape from the first layer ({first}); "
                                 "pass input_shape=..., e.g. input_shape=(1, 28, 28)")
            shape = tuple(inferred)
        else:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape):
                raise ShapeError(f"input_shape must be a tuple of positive ints (per sample), got {input_shape!r}")
            shape = tuple(input_shape)
        shapes = [shape]
        for i, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.output_shape(shape))
            except ShapeError as err:
                given = f" (from input_shape={input_shape!r})" if i == 0 and input_shape is not None else ""
                raise ShapeError(f"layers[{i}] {type(layer).__name__}: {err}{given}") from None
            shapes.append(shape)
        return shapes[0], shapes[1:]

    @property
    def xp(self) -> Any:
        """The Array API namespace of the network's arrays."""
        return self.backend.xp

    @property
    def in_features(self) -> int:
        """Input features per sample (the product of ``input_shape``)."""
        return _prod(self.input_shape)

    @property
    def out_features(self) -> int:
        """Output features per sample (the product of ``output_shape``)."""
        return _prod(self.output_shape)

    def context(self, training: bool, step: Any = None) -> Context:
        """The :class:`Context` of one pass (``step`` defaults to :attr:`step_count`)."""
        cache = None if self.store.functional else self._cache  # compiled steps make their constants
        return Context(self.backend, training, self.seed, self.step_count if step is None else step, cache)

    # ------------------------------------------------------------------ parameters and buffers
    def parameters(self) -> list[Parameter]:
        """Every parameter once, layer by layer (weight before bias), trainable or frozen."""
        return list(self.store.params)

    def named_parameters(self) -> dict[str, Parameter]:
        """``{"layers.0.weight": Parameter, ...}``; a shared layer's under its first position."""
        named: dict[str, Parameter] = {}
        seen: set[Parameter] = set()
        for layer in self.unique_layers:
            for p in layer.parameters():
                if p not in seen:
                    seen.add(p)
                    named[f"layers.{self._positions[layer]}.{p.name}"] = p
        return named

    def named_buffers(self) -> dict[str, Buffer]:
        """``{"layers.3.running_mean": Buffer, ...}`` (untrained arrays saved with the network)."""
        return {f"layers.{self._positions[layer]}.{b.name}": b for layer in self.unique_layers for b in layer.buffers()}

    def step_buffers(self) -> list[Buffer]:
        """Every buffer a training step may replace: the layers' and, under mixed precision, the loss
        scale's (a training-time state: not saved in checkpoints, restarted by a resumed run)."""
        extra = self.loss_scale.buffers() if self.loss_scale is not None else []
        return [*self.named_buffers().values(), *extra]

    @property
    def n_parameters(self) -> int:
        """The number of parameter values (trainable and frozen)."""
        return self.store.size

    def position(self, layer: Layer) -> int:
        """The first index of ``layer`` in :attr:`layers`."""
        return self._positions[layer]

    # ------------------------------------------------------------------ inputs and targets
    def prepare_inputs(self, x: Any, name: str = "x") -> Any:
        """``x`` as a float ``(n, *input_shape)`` array on the network's device (see the class doc).
        Host data is checked to be finite; raises bpx errors naming ``name``."""
        backend = self.backend
        expected = self.input_shape
        if is_host(x):
            host = as_host_array(x, name)
            _check_input_shape(tuple(host.shape), expected, name)
            finite_or_raise(host, name)
            check_representable(host, backend.dtype_name, name)
            return backend.from_host(host, backend.dtype)
        x = backend.asarray(x, name=name)
        _check_input_shape(tuple(x.shape), expected, name)
        if x.dtype != backend.dtype:
            xp = backend.xp
            if not xp.isdtype(x.dtype, ("real floating", "integral", "bool")):
                raise BpxTypeError(f"{name}: inputs must be real numbers, got dtype {x.dtype}")
            x = xp.astype(x, backend.dtype)
        return x

    def prepare_targets(self, t: Any, loss: str | Loss, name: str = "targets") -> Any:
        """Targets converted and validated for ``loss`` (see :meth:`Loss.prepare_targets`)."""
        return self.resolve_loss(loss).prepare_targets(t, self.backend, self.output_shape, name)

    def resolve_loss(self, loss: str | Loss | None) -> Loss:
        """A loss instance for ``loss`` (``None``: the loss the network remembers), checked against
        the last layer: the logit losses must not follow a ``Softmax``/``Sigmoid`` layer."""
        if loss is None:
            if self.loss is None:
                raise BpxValueError("no loss given, and this network has not been trained with one; "
                                    "pass loss=... (e.g. loss='softmax_cross_entropy')")
            return self.loss
        resolved = get_loss(loss)
        if resolved.takes_logits:
            last = type(self.layers[-1]).__name__
            if last in ("Softmax", "Sigmoid"):
                raise BpxValueError(f"{type(resolved).__name__} takes logits and applies its own "
                                    f"{'softmax' if last == 'Softmax' else 'sigmoid'}; remove the final {last} layer")
        return resolved

    # ------------------------------------------------------------------ the passes
    def forward(self, x: Any, training: bool = False) -> Any:
        """Outputs ``(n, *output_shape)`` for inputs ``x`` (host data or device arrays).

        ``training=False`` (the default) runs inference mode (no dropout, running statistics);
        ``training=True`` runs the layers as during training, without updating anything (buffers
        such as running statistics are given their values back)."""
        check_bool(training, "training")
        buffers = self.step_buffers()
        kept = [b.value for b in buffers]  # layers replace buffers, never update them in place
        try:
            return self.forward_pass(self.prepare_inputs(x), self.context(training), keep=False).outputs
        finally:
            for b, value in zip(buffers, kept, strict=True):
                b.value = value

    def forward_pass(self, x: Any, ctx: Context, observer: Observer | None = None, keep: bool = True) -> ForwardPass:
        """Run every layer on prepared inputs ``x``; ``keep`` retains what backward needs."""
        saved: list[Any] = []
        for position, layer in enumerate(self.layers):
            ctx.position = position
            y, kept = layer.forward(x, ctx)
            if observer is not None:
                observer.forward(position, layer, x, y, kept)
            if keep:
                saved.append(kept)
            x = y
        return ForwardPass(x, saved)

    def backward(self, passed: ForwardPass, grad_outputs: Any, grads: Gradients, ctx: Context,
                 observer: Observer | None = None, need_input_grad: bool = False) -> Any:
        """Propagate ∂E/∂outputs back through the layers of ``passed``, adding every trainable
        parameter's gradient to ``grads``. Returns ∂E/∂x when ``need_input_grad`` (otherwise the
        layers before the first one with trainable parameters are skipped: the data needs no
        gradient). ``grad_outputs`` may be overwritten."""
        first = 0 if need_input_grad else self.first_trainable_position()
        g = grad_outputs
        for position in range(len(self.layers) - 1, first - 1, -1):
            layer = self.layers[position]
            ctx.position = position
            if observer is not None:
                observer.backward(position, layer, g)
            g = layer.backward(passed.saved[position], g, grads, ctx, need_input_grad or position > first)
        return g if need_input_grad else None

    def first_trainable_position(self) -> int:
        """The index of the first layer with a trainable parameter (``len(layers)`` when none):
        backward needs to reach it, and no further."""
        store = self.store
        if store.layout_pending:
            store.refresh_layout()
        cached = self._cache.get("first_trainable")
        if cached is None or cached[0] != store.layout_version:
            trainable = set(store.trainable)
            first = next((i for i, layer in enumerate(self.layers)
                          if any(p in trainable for p in layer.parameters())), len(self.layers))
            cached = self._cache["first_trainable"] = (store.layout_version, first)
        return cached[1]

    # ------------------------------------------------------------------ architecture and weights
    def config(self) -> dict[str, Any]:
        """The architecture as JSON-serialisable data (no weights); a repeated layer is written
        as ``{"same_as": first_position}``."""
        entries: list[dict[str, Any]] = []
        for i, layer in enumerate(self.layers):
            first = self._positions[layer]
            entries.append({"same_as": first} if first != i else {"type": type_name(type(layer)), **layer.config()})
        return {"layers": entries, "input_shape": list(self.input_shape)}

    @classmethod
    def from_config(cls: type[N], config: dict[str, Any], backend: str | Backend | None = None, device: Any = None,
                    dtype: Any = None, seed: int | None = None) -> N:
        """Build a network from :meth:`config` output (weights freshly initialised from ``seed``)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or not config["layers"]:
            raise BpxValueError(f"invalid network config: expected {{'layers': [...]}}, got {_short(config)}")
        layers: list[Layer] = []
        for i, spec in enumerate(config["layers"]):
            if not isinstance(spec, dict):
                raise BpxValueError(f"invalid network config: layers[{i}] is {_short(spec)}, not an object")
            if "same_as" in spec:
                ref = spec["same_as"]
                if set(spec) != {"same_as"} or not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < i:
                    raise BpxValueError(f"invalid network config: layers[{i}] refers to {_short(spec)}")
                layers.append(layers[ref])
            else:
                kind = spec.get("type")
                layers.append(layer_from_config(kind, {k: v for k, v in spec.items() if k != "type"}))
        shape = config.get("input_shape")
        return cls(*layers, backend=backend, device=device, dtype=dtype, seed=seed,
                   input_shape=tuple(shape) if isinstance(shape, list) else shape)

    def state_dict(self) -> dict[str, Any]:
        """Parameter and buffer values copied to host NumPy arrays, keyed as in
        :meth:`named_parameters` and :meth:`named_buffers`."""
        from ..host.arrays import to_host

        values = self.store.host_values()
        state = {name: values[p] for name, p in self.named_parameters().items()}
        state.update({name: to_host(b.value).copy() for name, b in self.named_buffers().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set every parameter and buffer from ``state`` (host or same-backend arrays), checking names,
        shapes and that every value is finite and representable in the network's dtype."""
        if not isinstance(state, dict):
            raise BpxTypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        params, buffers = self.named_parameters(), self.named_buffers()
        shapes = {name: p.shape for name, p in params.items()} | {name: b.shape for name, b in buffers.items()}
        check_value_count(state, shapes, "state")
        host = {p: host_values(state[name], p.shape, name) for name, p in params.items()}
        for name, p in params.items():
            check_representable(host[p], self.backend.master_dtype_name, name)
        buffer_values = {name: host_values(state[name], b.shape, name) for name, b in buffers.items()}
        for name, value in buffer_values.items():
            check_representable(value, self.backend.master_dtype_name, name)
        self.store.load_host(host)
        for name, b in buffers.items():
            b.value = self.backend.asarray(buffer_values[name], self.backend.master_dtype, copy=True, name=name)

    def to(self: N, backend: str | Backend | None = None, device: Any = None, dtype: Any = None) -> N:
        """A copy of this network on another backend/device/dtype (weights copied through the
        host; frozen parameters stay frozen; the loss, metrics and step count come along).
        ``dtype=None`` keeps the current dtype."""
        if dtype is None and not isinstance(backend, Backend):
            dtype = self.backend.dtype_name
        if backend is None:
            backend = self.backend.name
        clones: dict[Layer, Layer] = {}
        layers = [clones.setdefault(layer, layer.clone()) for layer in self.layers]
        twin = type(self)(*layers, backend=backend, device=device, dtype=dtype, seed=self.seed,
                          input_shape=self.input_shape)
        twin.load_state_dict(self.state_dict())
        for mine, theirs in zip(self.parameters(), twin.parameters(), strict=True):
            theirs.trainable = mine.trainable
        twin.loss, twin.metrics, twin.step_count = self.loss, self.metrics, self.step_count
        twin.epochs_trained = self.epochs_trained
        return twin

    # ------------------------------------------------------------------ description
    def summary(self) -> Summary:
        """A table of the layers: output shape per sample, parameter counts, shared uses."""
        rows = []
        for i, layer in enumerate(self.layers):
            first = self._positions[layer]
            params = layer.parameters()
            trainable = sum(p.size for p in params if p.trainable)
            frozen = sum(p.size for p in params if not p.trainable)
            note = f"same layer as layers[{first}]" if first != i else ""
            count = "" if first != i else f"{trainable + frozen:,}" + (f" ({frozen:,} frozen)" if frozen else "")
            rows.append((f"{i}", repr(layer) if first == i else type(layer).__name__,
                         _shape_text(self.shapes[i]), count, note))
        total = self.store.size
        frozen = total - self.store.trainable_size
        return Summary(rows, self.input_shape, total, frozen, self.backend.describe())

    def __repr__(self) -> str:
        positions = self._positions
        inner = ",\n    ".join(repr(layer) if positions[layer] == i else f"<same as layers[{positions[layer]}]>"
                               for i, layer in enumerate(self.layers))
        return (f"{type(self).__name__}(\n    {inner},\n    backend={self.backend.name!r}, "
                f"device={str(self.backend.device)!r}, dtype={self.backend.dtype_name!r})")


@dataclass
class Summary:
    """What :meth:`Network.summary` returns: prints (and displays in notebooks) as a table."""

    rows: list[tuple[str, str, str, str, str]]
    input_shape: tuple[int, ...]
    total: int
    frozen: int
    backend: str

    def __str__(self) -> str:
        head = ("#", "layer", "output shape", "parameters", "")
        table = [head, *self.rows]
        widths = [max(len(r[c]) for r in table) for c in range(5)]
        lines = [f"input: (n, {', '.join(map(str, self.input_shape))})  [{self.backend}]"]
        for r in table:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        trainable = self.total - self.frozen
        lines.append(f"total: {self.total:,} parameters ({trainable:,} trainable, {self.frozen:,} frozen)")
        return "\n".join(lines)

    __repr__ = __str__


def _owner_of(err: Exception, names: dict[Parameter, str]) -> str:
    """A prefix naming the parameter an initialisation error is about (when it can be told)."""
    for p, name in names.items():
        if str(err).startswith(f"{p.name} (from its initialiser)") or str(err).startswith(f"{p.name}:"):
            return f"{name.rsplit('.', 1)[0]} "
    return ""


def _check_input_shape(shape: tuple[int, ...], expected: tuple[int, ...], name: str) -> None:
    if len(shape) != 1 + len(expected) or shape[1:] != expected:
        hint = f"; for one sample use shape (1, {', '.join(map(str, expected))})" if shape == expected else ""
        raise ShapeError(f"{name}: expected shape (n_samples, {', '.join(map(str, expected))}), got {shape}{hint}")


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"(n, {', '.join(map(str, shape))})"


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
