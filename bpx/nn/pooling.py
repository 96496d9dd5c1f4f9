"""Pooling over NCHW inputs: ``MaxPool2D``, ``AvgPool2D`` and ``GlobalAvgPool2D``.

Inputs ``(n, C, H, W)``; a ``kh × kw`` window with stride ``(sh, sw)`` (default: the kernel, so
windows tile the image) gives ``(n, C, H_out, W_out)``, ``H_out = ⌊(H − kh) / sh⌋ + 1`` (no
padding; rows and columns that no window reaches get a zero gradient), as PyTorch's
``max_pool2d``/``avg_pool2d`` with their defaults. Windows are gathered as in :mod:`bpx.nn.windows`
(working layout ``(C, H, W, n)``): ``kh·kw`` strided views stacked once along a new leading axis,
``(kh·kw, C, H_out, W_out, n)``; outputs are NCHW views with batch-last memory.
"""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from .layer import Context, Layer
from .parameter import Gradients
from .windows import (
    from_work,
    out_size,
    pair,
    pair_config,
    pair_text,
    scatter_windows,
    set_into,
    to_work,
    window_views,
)


def _check_image(owner: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        hint = (" (images must be (n, channels, height, width), e.g. x.reshape(-1, 1, 28, 28) with "
                "input_shape=(1, 28, 28))" if len(shape) < 3 else "")
        raise ShapeError(f"{owner} expects per-sample inputs shaped (channels, height, width), got {shape}{hint}")
    return shape[0], shape[1], shape[2]


class _Pool2D(Layer):
    """Shared parts of the windowed pools: arguments, shapes, configuration, gradient placement."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> None:
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, f"{name} kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, f"{name} stride")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = _check_image(self._describe(), tuple(input_shape))
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ho, wo = out_size(h, kh, sh), out_size(w, kw, sw)
        if ho < 1 or wo < 1:
            raise ShapeError(f"{self._describe()}: the {kh}×{kw} window is larger than its input {h}×{w} "
                             f"(input shape {tuple(input_shape)})")
        return (c, ho, wo)

    def _describe(self) -> str:
        stride = "" if self.stride == self.kernel_size else f", stride {pair_text(self.stride)}"
        return f"{type(self).__name__}({pair_text(self.kernel_size)}{stride})"

    def _windows(self, ctx: Context, x: Any) -> Any:
        """The stacked windows of ``x`` ``(n, C, H, W)``: ``(kh·kw, C, H_out, W_out, n)`` (one ``stack``)."""
        out = (out_size(x.shape[2], self.kernel_size[0], self.stride[0]),
               out_size(x.shape[3], self.kernel_size[1], self.stride[1]))
        xp = ctx.backend.xp
        return xp.stack(window_views(to_work(xp, x), self.kernel_size, self.stride, out), axis=0)

    def _place(self, ctx: Context, parts: Any, shape: tuple[int, ...]) -> Any:
        """∂E/∂x ``(n, C, H, W)`` (``shape``) from the per-offset contributions ``parts``, shaped
        ``(kh·kw, C, H_out, W_out, n)`` (or ``(1, ...)`` when every offset gets the same).

        Tiling windows (stride = kernel) need no additions: one permuted copy lays the
        contributions out as ``(C, H_out·kh, W_out·kw, n)`` (plus a zero array and one slice
        assignment when windows leave rows or columns uncovered). Overlapping or gapped windows
        are added one offset at a time (col2im: 1 + kh·kw operations)."""
        backend = ctx.backend
        xp = backend.xp
        kh, kw = self.kernel_size
        n, c, h, w = shape
        ho, wo = parts.shape[2], parts.shape[3]
        if self.stride != self.kernel_size:
            kk = kh * kw
            pieces = [parts[k, ...] for k in range(kk)] if parts.shape[0] == kk else [parts[0, ...]] * kk
            return from_work(xp, scatter_windows(backend, pieces, (c, h, w, n), self.kernel_size, self.stride))
        parts = xp.broadcast_to(parts, (kh * kw, c, ho, wo, n))
        tiles = xp.permute_dims(xp.reshape(parts, (kh, kw, c, ho, wo, n)), (2, 3, 0, 4, 1, 5))
        tiles = xp.reshape(tiles, (c, ho * kh, wo * kw, n))  # the one copy
        if (ho * kh, wo * kw) != (h, w):
            index = (slice(None), slice(0, ho * kh), slice(0, wo * kw), slice(None))
            tiles = set_into(backend, backend.zeros((c, h, w, n)), index, tiles)
        return from_work(xp, tiles)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"kernel_size": pair_config(self.kernel_size)}
        if self.stride != self.kernel_size:
            cfg["stride"] = pair_config(self.stride)
        return cfg


class MaxPool2D(_Pool2D):
    """The maximum of each ``kh × kw`` window: ``(n, C, H, W) → (n, C, H_out, W_out)``.

    Ties: when several elements of a window share its maximum, the **first one in row-major
    order within the window** (smallest row offset, then smallest column offset) receives the
    whole gradient, as PyTorch's CPU ``max_pool2d`` does (it is also the Array API rule for
    ``argmax``: the first occurrence). With overlapping windows an element collects the gradient
    of every window it is the chosen maximum of.

    Operations: forward 3 + 2·kh·kw (``stack`` of the ``kh·kw`` window views, ``max``, then the
    winning offset of each window: 3 for the last offset, a comparison and a ``where`` for each
    other one; it saves that ``(n, C, H_out, W_out)`` int8 offset, not the input); backward 4
    with tiling windows (comparison and cast to a one-hot, its product with ``grad_y``, one
    permuted copy; +2 when windows leave rows or columns uncovered), else 4 + ``kh·kw`` (a zero
    array and strided adds instead of the copy). Memory: the stacked windows,
    ``kh·kw × n·C·H_out·W_out`` floats (about the input's size for tiling windows), live during
    forward only. NaN in a window gives a NaN maximum.
    """

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        xp = ctx.backend.xp
        stacked = self._windows(ctx, x)  # (kh·kw, C, Ho, Wo, n)
        y = xp.max(stacked, axis=0)
        # The winning offset: the smallest k whose window element equals the maximum, found by
        # overwriting from the last offset to the first (argmax along the leading axis is 2x
        # slower on NumPy and 10x slower on PyTorch's CPU than these element-wise passes).
        kk = stacked.shape[0]
        arg = xp.astype(stacked[kk - 1, ...] == y, xp.int8 if kk <= 127 else xp.int32) * (kk - 1)
        for k in range(kk - 2, -1, -1):
            arg = xp.where(stacked[k, ...] == y, k, arg)
        return from_work(xp, y), (arg, tuple(x.shape))

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        if not need_input_grad:
            return None
        xp = ctx.backend.xp
        arg, shape = saved
        kk = self.kernel_size[0] * self.kernel_size[1]
        offsets = xp.reshape(ctx.arange(kk, arg.dtype), (kk, 1, 1, 1, 1))
        parts = xp.astype(arg == offsets, grad_y.dtype)  # (kh·kw, C, Ho, Wo, n): one-hot of the winner
        parts *= to_work(xp, grad_y)
        return self._place(ctx, parts, shape)


class AvgPool2D(_Pool2D):
    """The mean of each ``kh × kw`` window: ``(n, C, H, W) → (n, C, H_out, W_out)`` (every window
    lies inside the input, so it always averages ``kh·kw`` elements).

    Operations: forward 2 (``stack`` of the window views, ``mean``); backward 2 with tiling windows
    (scale, one broadcast copy; +2 when windows leave rows or columns uncovered), else 2 + ``kh·kw``
    (a zero array and strided adds). Memory as :class:`MaxPool2D`.
    """

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        xp = ctx.backend.xp
        return from_work(xp, xp.mean(self._windows(ctx, x), axis=0)), tuple(x.shape)

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        if not need_input_grad:
            return None
        grad_y *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])  # in place: grad_y is ours
        return self._place(ctx, to_work(ctx.backend.xp, grad_y)[None, ...], saved)


class GlobalAvgPool2D(Layer):
    """The mean over all positions of each channel: ``(n, C, H, W) → (n, C)``.

    Operations: forward 1 (``mean`` over the spatial axes), backward 2 (scale, broadcast product
    with a cached ``(H, W)`` array of ones).
    """

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, _, _ = _check_image("GlobalAvgPool2D", tuple(input_shape))
        return (c,)

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        return ctx.backend.xp.mean(x, axis=(2, 3)), (x.shape[2], x.shape[3])

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        if not need_input_grad:
            return None
        h, w = saved
        grad_y *= 1.0 / (h * w)
        return grad_y[:, :, None, None] * ctx.ones((h, w))
