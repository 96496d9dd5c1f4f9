"""The layer contract: shapes, forward, backward, configuration.

A layer is a function of its input and its parameters. ``forward(x, ctx)`` returns the output
and whatever the layer saves for its backward pass (the layer object itself keeps no per-call
state, so one layer may appear at several places of a network: weight tying);
``backward(saved, grad_y, grads, ctx, need_input_grad)`` adds ∂E/∂param to ``grads`` and returns
∂E/∂x (or ``None`` when ``need_input_grad`` is false: the first layer's input is the data).
``backward`` may overwrite ``grad_y`` in place (the network passes arrays it owns).

Shapes are per sample: an input batch is ``(n, *input_shape)``; :meth:`Layer.output_shape` maps
a per-sample input shape to the per-sample output shape and raises :class:`ShapeError` when it
does not fit, so a network is checked when it is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BpxValueError

if TYPE_CHECKING:
    from ..backend import Backend
    from .parameter import Buffer, Gradients, Parameter


class Context:
    """What one forward/backward pass tells its layers besides their arrays.

    ``training``: training mode (dropout active, batch statistics) or inference mode;
    ``seed`` and ``step``: the network's seed and training-step count (``step`` may be a traced
    array inside a compiled step), which key random masks; ``position``: the index in
    ``network.layers`` of the layer being run (set by the network before each call).
    """

    __slots__ = ("_cache", "backend", "position", "seed", "step", "training")

    def __init__(self, backend: Backend, training: bool, seed: int = 0, step: Any = 0,
                 cache: dict[Any, Any] | None = None) -> None:
        self.backend = backend
        self.training = training
        self.seed = seed
        self.step = step
        self.position = 0
        self._cache = cache

    def zero(self) -> Any:
        """A 0-d zero of the float dtype on the device (reused across steps where allowed)."""
        return self._cached(("zero",), lambda b: b.zeros(()))

    def ones(self, shape: tuple[int, ...]) -> Any:
        """Ones of the float dtype shaped ``shape`` (reused across steps where allowed)."""
        return self._cached(("ones", shape), lambda b: b.ones(shape))

    def arange(self, k: int, dtype: Any) -> Any:
        """``0, 1, ..., k-1`` of the integer ``dtype`` (reused across steps where allowed)."""
        return self._cached(("arange", k, dtype),
                            lambda b: b.xp.arange(k, dtype=dtype, device=b.device))

    def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        backend = self.backend
        if self._cache is None or not backend.mutable:  # JAX: constants are free inside jit
            return make(backend)
        array = self._cache.get(key)
        if array is None:
            array = self._cache[key] = make(backend)
        return array


class Layer:
    """Base class of every layer (see the module docstring for the contract)."""

    #: Layer classes by type name, used to rebuild networks from their configuration: bpx's own
    #: layers by class name (``"Dense"``), others by ``"module.QualifiedName"`` (a class defined
    #: again, e.g. in a notebook, replaces the earlier definition).
    registry: ClassVar[dict[str, type[Layer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Layer.registry[type_name(cls)] = cls

    # ------------------------------------------------------------------ structure
    def parameters(self) -> list[Parameter]:
        """The layer's parameters (weight before bias), trainable or frozen."""
        return []

    def buffers(self) -> list[Buffer]:
        """Arrays the layer keeps but does not train (saved in checkpoints)."""
        return []

    def input_shape(self) -> tuple[int, ...] | None:
        """The per-sample input shape when the layer alone determines it (``Dense``), else ``None``."""
        return None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-sample output shape for ``input_shape``; element-wise layers keep it."""
        return input_shape

    def build(self, input_shape: tuple[int, ...], backend: Backend) -> None:
        """Create buffers on ``backend`` (parameters are created by the network's store)."""
        for buffer in self.buffers():
            buffer.build(backend)

    # ------------------------------------------------------------------ computation
    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        """``(y, saved)``: the output for input ``x`` and what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        """Add ∂E/∂param to ``grads`` and return ∂E/∂x (``None`` unless ``need_input_grad``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """Constructor arguments (without parameter values), JSON-serialisable."""
        return {}

    def clone(self) -> Layer:
        """A new, unbuilt layer with the same configuration (frozen flags included)."""
        twin = type(self)(**self.config())
        for mine, theirs in zip(self.parameters(), twin.parameters(), strict=True):
            theirs.trainable = mine.trainable
        return twin

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def frozen_flags(weight: Parameter, bias: Parameter | None) -> dict[str, bool]:
    """The configuration entries of a frozen ``weight``/``bias``: ``train_weight``/``train_bias`` =
    ``False`` for each that is not trainable (nothing for a trainable one or a missing bias)."""
    flags = {}
    if not weight.trainable:
        flags["train_weight"] = False
    if bias is not None and not bias.trainable:
        flags["train_bias"] = False
    return flags


def type_name(cls: type[Layer]) -> str:
    """The name under which ``cls`` is registered and written in configurations."""
    if cls.__module__.startswith("bpx.") and "<" not in cls.__qualname__:
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def layer_from_config(kind: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from its class name and :meth:`Layer.config`."""
    cls = Layer.registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BpxValueError(f"unknown layer type {kind!r}; known: {', '.join(sorted(Layer.registry))}")
    try:
        return cls(**config)
    except TypeError as err:
        raise BpxValueError(f"invalid configuration for {kind}: {err}") from None
