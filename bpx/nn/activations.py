"""Element-wise activations: ``Sigmoid``, ``Tanh``, ``ReLU``, ``LeakyReLU``, ``Softmax``, ``Identity``.

Each saves what its derivative needs (usually its output) and offers :meth:`Activation.slope`,
∂out/∂net element-wise, which explain mode shows (Softmax has no element-wise slope).
"""

from __future__ import annotations

from typing import Any

from ..checks import check_float
from .layer import Context, Layer
from .parameter import Gradients


class Activation(Layer):
    """An element-wise function ``y = f(x)``; ``backward`` returns ``grad_y · f'(x)``."""

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        y = self.apply(x, ctx.backend.xp)
        return y, y

    def apply(self, x: Any, xp: Any) -> Any:
        """f(x) element-wise (``xp``: the namespace of ``x``)."""
        raise NotImplementedError

    def slope(self, saved: Any, xp: Any) -> Any:
        """∂out/∂net element-wise from what ``forward`` saved (also shown by explain mode)."""
        raise NotImplementedError

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        if not need_input_grad:
            return None
        grad_y *= self.slope(saved, ctx.backend.xp)  # in place: grad_y is ours
        return grad_y


def sigmoid(x: Any, xp: Any) -> Any:
    """σ(x) = e^m / (e^m + e^(m − x)) with m = min(x, 0), i.e. 1 / (1 + e^(−x)) for x ≥ 0 and
    e^x / (e^x + 1) for x < 0: no overflow (both exponents are ≤ 0) and full relative precision
    on both sides (no cancellation), with 6 element-wise operations and no branch (``xp.where``
    is 10× slower on NumPy)."""
    m = xp.minimum(x, 0.0)
    numerator = xp.exp(m)
    denominator = xp.exp(m - x)
    denominator += numerator
    numerator /= denominator
    return numerator


class Sigmoid(Activation):
    """σ(x) = 1 / (1 + e^(−x)) (see :func:`sigmoid`); σ' = y(1 − y)."""

    def apply(self, x: Any, xp: Any) -> Any:
        return sigmoid(x, xp)

    def slope(self, saved: Any, xp: Any) -> Any:
        return saved * (1.0 - saved)


class Tanh(Activation):
    """tanh(x); derivative 1 − y²."""

    def apply(self, x: Any, xp: Any) -> Any:
        return xp.tanh(x)

    def slope(self, saved: Any, xp: Any) -> Any:
        return 1.0 - saved * saved


class ReLU(Activation):
    """max(x, 0); derivative 1 where the output is positive, else 0."""

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        y = ctx.backend.xp.maximum(x, ctx.zero())
        return y, y

    def apply(self, x: Any, xp: Any) -> Any:
        return xp.maximum(x, 0.0)

    def slope(self, saved: Any, xp: Any) -> Any:
        return xp.astype(saved > 0, saved.dtype)

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        return ctx.backend.relu_backward(grad_y, saved) if need_input_grad else None  # grad_y is ours


class LeakyReLU(Activation):
    """x for x > 0, ``negative_slope``·x otherwise (0 ≤ negative_slope ≤ 1, so that it is
    max(x, slope·x)); derivative 1 or ``negative_slope``. Saves its input."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = check_float(negative_slope, "LeakyReLU negative_slope", 0.0, 1.0)

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        return self.apply(x, ctx.backend.xp), x

    def apply(self, x: Any, xp: Any) -> Any:
        return xp.maximum(x, self.negative_slope * x)

    def slope(self, saved: Any, xp: Any) -> Any:
        a = self.negative_slope
        return a + (1.0 - a) * xp.astype(saved > 0, saved.dtype)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Softmax(Activation):
    """Row-wise softmax over the last axis, stable for any input size. For classification prefer
    a final ``Dense`` with ``SoftmaxCrossEntropy``, which takes logits and fuses the derivative."""

    def apply(self, x: Any, xp: Any) -> Any:
        e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
        e /= xp.sum(e, axis=-1, keepdims=True)
        return e

    def slope(self, saved: Any, xp: Any) -> Any:
        return None  # the outputs are coupled: no element-wise slope

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        if not need_input_grad:
            return None
        y = saved
        return y * (grad_y - ctx.backend.xp.sum(grad_y * y, axis=-1, keepdims=True))


class Identity(Activation):
    """f(x) = x."""

    def apply(self, x: Any, xp: Any) -> Any:
        return x

    def slope(self, saved: Any, xp: Any) -> Any:
        return xp.ones_like(saved)

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        return grad_y if need_input_grad else None


ACTIVATIONS: dict[str, type[Activation]] = {
    "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
    "softmax": Softmax, "identity": Identity,
}
