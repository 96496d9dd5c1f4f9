"""``Flatten``: per-sample arrays to rows, e.g. convolution features ``(n, C, H, W)`` to ``(n, C·H·W)``."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from .layer import Context, Layer
from .parameter import Gradients


class Flatten(Layer):
    """``(n, d1, d2, ...) → (n, d1·d2·...)`` in row-major (C) order, as ``torch.flatten(x, 1)``:
    for NCHW inputs the feature index is ``c·H·W + h·W + w``.

    One ``reshape`` each way (a view when the input's memory allows it, else one copy); the
    backward pass reshapes ``grad_y`` back to the input's shape.
    """

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if not shape:
            raise ShapeError("Flatten expects per-sample inputs with at least one axis, got shape ()")
        size = 1
        for d in shape:
            size *= d
        return (size,)

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        shape = tuple(x.shape)
        size = 1
        for d in shape[1:]:
            size *= d
        return ctx.backend.xp.reshape(x, (shape[0], size)), shape  # no -1: a batch of 0 rows stays valid

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        return ctx.backend.xp.reshape(grad_y, saved) if need_input_grad else None
