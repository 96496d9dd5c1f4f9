"""Layers: ``Dense`` and element-wise activations, written against the Array API only.

Conventions (shapes): inputs are ``(n_samples, n_features)``; ``Dense`` computes
``y = x @ W + b`` with ``W`` shaped ``(in, out)`` and ``b`` shaped ``(out,)``.
``forward(x)`` caches what ``backward`` needs; ``backward(grad_out, input_grad=True)`` stores
∂E/∂param in each trainable parameter's ``grad`` and returns ∂E/∂x (or ``None`` when the
caller does not need it, e.g. for the first layer, whose input is the data). ``backward`` may
overwrite ``grad_out`` (the network passes arrays it owns): keep a copy if you need it.
"""

from __future__ import annotations

from typing import Any

from . import init as initializers
from .backend import Backend


class Parameter:
    """A trainable (or frozen) array: ``value``, its gradient ``grad`` and ``trainable``."""

    __slots__ = ("grad", "name", "trainable", "value")

    def __init__(self, name: str, value: Any, trainable: bool = True) -> None:
        self.name = name
        self.value = value
        self.grad: Any = None
        self.trainable = trainable

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    def __repr__(self) -> str:
        frozen = "" if self.trainable else ", frozen"
        return f"Parameter({self.name!r}, shape={self.shape}{frozen})"


class Layer:
    """Base class. Subclasses set ``self.xp`` in :meth:`build` and implement forward/backward."""

    xp: Any = None
    name: str = "layer"

    def build(self, backend: Backend, rng: Any) -> None:
        """Create parameters on ``backend`` (drawing initial values from the host ``rng``)."""
        self.xp = backend.xp

    def parameters(self) -> list[Parameter]:
        return []

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad_out: Any, input_grad: bool = True) -> Any:
        raise NotImplementedError

    def output_features(self, in_features: int) -> int:
        """Number of output features for ``in_features`` inputs (element-wise: unchanged)."""
        return in_features

    def config(self) -> dict[str, Any]:
        """Constructor arguments (without parameter values), JSON-serialisable."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``; ``W`` is ``(in_features, out_features)``.

    Args:
        weight: explicit initial ``W`` (nested lists or any array, shape ``(in, out)``);
            otherwise drawn with ``init`` from the network's seed.
        bias: explicit initial ``b``: a scalar (filling all outputs) or shape ``(out,)``;
            default zeros. ``use_bias=False`` drops the bias altogether.
        train_weight, train_bias: ``False`` freezes that parameter (it keeps its value).
    """

    def __init__(self, in_features: int, out_features: int, *, weight: Any = None, bias: Any = None,
                 init: str | initializers.Initializer = "glorot_uniform", use_bias: bool = True,
                 train_weight: bool = True, train_bias: bool = True) -> None:
        for label, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Dense: {label} must be a positive int, got {n!r}")
        if bias is not None and not use_bias:
            raise ValueError("Dense: bias values given but use_bias=False")
        self.in_features, self.out_features = in_features, out_features
        self.init = init
        self._init_fn = initializers.get_initializer(init)
        shape = (in_features, out_features)
        self._weight0 = None if weight is None else initializers.host_values(weight, shape, "Dense weight")
        self._bias0 = None if bias is None else initializers.host_values(bias, (out_features,), "Dense bias")
        self.use_bias, self.train_weight, self.train_bias = use_bias, train_weight, train_bias
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        self._x: Any = None

    def build(self, backend: Backend, rng: Any) -> None:
        self.xp, self._device = backend.xp, backend.device
        shape = (self.in_features, self.out_features)
        w = self._weight0 if self._weight0 is not None else self._init_fn(rng, shape)
        self.weight = Parameter("weight", backend.asarray(w, backend.dtype, copy=True), self.train_weight)
        if self.use_bias:
            b = self._bias0 if self._bias0 is not None else [0.0] * self.out_features
            self.bias = Parameter("bias", backend.asarray(b, backend.dtype, copy=True), self.train_bias)

    def parameters(self) -> list[Parameter]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def output_features(self, in_features: int) -> int:
        if in_features != self.in_features:
            raise ValueError(f"{self.name}: expects {self.in_features} input features, "
                             f"but the previous layer gives {in_features}")
        return self.out_features

    def forward(self, x: Any) -> Any:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self.name}: expected input of shape (n, {self.in_features}), "
                             f"got {tuple(x.shape)}")
        self._x = x
        y = x @ self.weight.value
        if self.bias is not None:
            y += self.bias.value
        return y

    def backward(self, grad_out: Any, input_grad: bool = True) -> Any:
        w = self.weight
        if w.trainable:
            w.grad = self._x.T @ grad_out
        if self.bias is not None and self.bias.trainable:
            # Σ over the batch as a matrix-vector product: 2-3x faster than xp.sum(axis=0) here
            ones = self.xp.ones((grad_out.shape[0],), dtype=grad_out.dtype, device=self._device)
            self.bias.grad = ones @ grad_out
        return grad_out @ w.value.T if input_grad else None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features}
        if isinstance(self.init, str) and self.init != "glorot_uniform":
            cfg["init"] = self.init  # a callable initialiser is not recorded: it matters only before training
        if not self.use_bias:
            cfg["use_bias"] = False
        if not (self.weight.trainable if self.weight else self.train_weight):
            cfg["train_weight"] = False
        if self.use_bias and not (self.bias.trainable if self.bias else self.train_bias):
            cfg["train_bias"] = False
        return cfg


class Activation(Layer):
    """An element-wise function; caches its output (or input) for the backward pass."""

    def backward(self, grad_out: Any, input_grad: bool = True) -> Any:
        return self.derivative_times(grad_out) if input_grad else None

    def derivative_times(self, grad_out: Any) -> Any:
        """Return ``grad_out * f'(net)`` using the cached forward values."""
        raise NotImplementedError


def sigmoid(x: Any, xp: Any) -> Any:
    """σ(x) without overflow and to full relative precision: with e = e^(−|x|) and
    r = 1/(1 + e), σ = r for x ≥ 0 and e·r for x < 0. The choice is made arithmetically
    (``r·(e + s·(1 − e))`` with s = [x ≥ 0]): ``xp.where`` is 10× slower on NumPy."""
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    s = xp.astype(x >= 0, x.dtype)
    return r * (e + s * (1.0 - e))


class Sigmoid(Activation):
    """σ(x) = 1 / (1 + e^(−x)) (see :func:`sigmoid`); σ' = y(1 − y)."""

    def forward(self, x: Any) -> Any:
        self._y = sigmoid(x, self.xp)
        return self._y

    def derivative_times(self, grad_out: Any) -> Any:
        y = self._y
        return grad_out * y * (1.0 - y)


class Tanh(Activation):
    """tanh(x); derivative 1 − y²."""

    def forward(self, x: Any) -> Any:
        self._y = self.xp.tanh(x)
        return self._y

    def derivative_times(self, grad_out: Any) -> Any:
        y = self._y
        return grad_out * (1.0 - y * y)


class ReLU(Activation):
    """max(x, 0); derivative 1 where the output is positive, else 0."""

    def forward(self, x: Any) -> Any:
        self._y = self.xp.maximum(x, 0.0)
        return self._y

    def derivative_times(self, grad_out: Any) -> Any:
        return grad_out * self.xp.astype(self._y > 0, grad_out.dtype)

    def backward(self, grad_out: Any, input_grad: bool = True) -> Any:
        if not input_grad:
            return None
        grad_out *= self.xp.astype(self._y > 0, grad_out.dtype)  # in place: no temporary
        return grad_out


class LeakyReLU(Activation):
    """x for x > 0, ``negative_slope``·x otherwise (0 ≤ negative_slope ≤ 1, so that it is
    max(x, slope·x)); derivative 1 or ``negative_slope``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        negative_slope = float(negative_slope)
        if not 0.0 <= negative_slope <= 1.0:
            raise ValueError(f"LeakyReLU: negative_slope must be in [0, 1], got {negative_slope}")
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Any:
        self._x = x
        return self.xp.maximum(x, self.negative_slope * x)

    def derivative_times(self, grad_out: Any) -> Any:
        a = self.negative_slope
        return grad_out * (a + (1.0 - a) * self.xp.astype(self._x > 0, grad_out.dtype))

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Softmax(Activation):
    """Row-wise softmax (stable). For classification prefer a final ``Dense`` with
    ``SoftmaxCrossEntropy``, which takes logits and fuses the derivative."""

    def forward(self, x: Any) -> Any:
        xp = self.xp
        e = xp.exp(x - xp.max(x, axis=1, keepdims=True))
        self._y = e / xp.sum(e, axis=1, keepdims=True)
        return self._y

    def derivative_times(self, grad_out: Any) -> Any:
        y = self._y
        return y * (grad_out - self.xp.sum(grad_out * y, axis=1, keepdims=True))


class Identity(Activation):
    """f(x) = x."""

    def forward(self, x: Any) -> Any:
        return x

    def derivative_times(self, grad_out: Any) -> Any:
        return grad_out


LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax, Identity)
}

ACTIVATIONS: dict[str, type[Activation]] = {
    "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
    "softmax": Softmax, "identity": Identity,
}


def layer_from_config(kind: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from its class name and :meth:`Layer.config`."""
    try:
        cls = LAYERS[kind]
    except KeyError:
        raise ValueError(f"unknown layer type {kind!r}; valid: {', '.join(LAYERS)}") from None
    return cls(**config)
