"""``Conv2D``: 2-D convolution (cross-correlation, as in PyTorch) by im2col and one matrix product.

Layout: NCHW. Inputs ``(n, C, H, W)``, weights ``(out_channels, in_channels, kh, kw)`` (PyTorch's
layout: weights copy between the two unchanged), outputs ``(n, out_channels, H_out, W_out)`` with
``H_out = ⌊(H + 2·ph − kh) / sh⌋ + 1`` (likewise ``W_out``), zero padding.

How it runs (see :mod:`bpx.nn.windows`): the input is viewed in the working layout
``(C, H, W, n)``, zero-padded, and its ``kh·kw`` strided window views are stacked once into the
im2col matrix ``cols`` of shape ``(C·kh·kw, H_out·W_out·n)``, rows ordered ``(c, i, j)`` like a
flattened weight. The output is one GEMM, ``W.reshape(O, C·kh·kw) @ cols``, shaped
``(O, H_out·W_out·n)``, returned as an ``(n, O, H_out, W_out)`` view (its memory is batch-last, so
the next spatial layer works on it without a copy). The backward pass is three GEMMs (∂W, ∂b,
∂cols) and col2im as ``kh·kw`` in-place adds into strided slices of a zero array (no scatter).
"""

from __future__ import annotations

from typing import Any

from ..checks import check_bool, check_int
from ..errors import BpxValueError, ShapeError
from ..host.init import UserInitializer, get_initializer, zeros
from .layer import Context, Layer, frozen_flags
from .parameter import Gradients, Parameter
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


class Conv2D(Layer):
    """2-D convolution over NCHW inputs: ``y[n, o] = Σ_c W[o, c] ⋆ x_padded[n, c] + b[o]``.

    Shapes: input ``(n, in_channels, H, W)``; ``weight`` ``(out_channels, in_channels, kh, kw)``;
    ``bias`` ``(out_channels,)``; output ``(n, out_channels, H_out, W_out)`` with
    ``H_out = ⌊(H + 2·padding_h − kh) / stride_h⌋ + 1`` and likewise ``W_out``. It computes what
    ``torch.nn.functional.conv2d(x, weight, bias, stride, padding)`` computes.

    Args:
        kernel_size, stride, padding: an int, or a pair ``(height, width)``; padding adds zeros.
        use_bias: ``False`` drops the bias.
        init: initialiser of the weight (``he_uniform`` by default: U(±√(6/fan_in)) with
            ``fan_in = in_channels·kh·kw``, the He et al. choice for the ReLU networks convolutions
            are usually part of; ``glorot_uniform`` etc. also work) or ``f(rng, shape)``.
        weight, bias: explicit initial values (any array or nested lists of the shapes above, or
            a number filling the shape); the bias defaults to zeros.
        train_weight, train_bias: ``False`` freezes that parameter.

    Cost per call, with ``K = in_channels·kh·kw`` and ``L = n·H_out·W_out``:

    * forward: 3 array operations (``stack`` of the ``kh·kw`` window views, one GEMM
      ``(O, K) @ (K, L)``, the bias add), plus 2 with padding (a zero array and one slice
      assignment); the window views and reshapes are views, not operations.
    * backward: at most 4 + ``kh·kw`` operations: GEMMs for ∂W ``(O, L) @ (L, K)``, ∂b
      ``(O, L) @ (L, 1)`` and ∂cols ``(K, O) @ (O, L)``, a zero array and ``kh·kw`` strided adds
      (col2im), plus one copy of ``grad_y`` unless its memory is already batch-last (as the layers of
      :mod:`bpx.nn.pooling` and this one return it). The
      first layer (``need_input_grad`` false) skips ∂cols and col2im: 2 operations.
    * memory: the im2col matrix ``cols`` holds ``K·L = in_channels·kh·kw × n·H_out·W_out`` floats
      (about ``kh·kw/(stride_h·stride_w)`` times the input) and is kept from forward to backward;
      backward allocates one more of the same size (∂cols) and a padded input-sized gradient.
      Bound it with the batch size: e.g. 32→64 channels, 5×5, 14×14 outputs, batch 128:
      800 × 25,088 floats = 77 MiB in float32. Inference frees each matrix after its layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, *, use_bias: bool = True,
                 init: str | UserInitializer = "he_uniform", weight: Any = None, bias: Any = None,
                 train_weight: bool = True, train_bias: bool = True) -> None:
        self.in_channels = check_int(in_channels, "Conv2D in_channels")
        self.out_channels = check_int(out_channels, "Conv2D out_channels")
        self.kernel_size = pair(kernel_size, "Conv2D kernel_size")
        self.stride = pair(stride, "Conv2D stride")
        self.padding = pair(padding, "Conv2D padding", low=0)
        self.use_bias = check_bool(use_bias, "Conv2D use_bias")
        if bias is not None and not use_bias:
            raise BpxValueError("Conv2D: bias values given but use_bias=False")
        self.init = init
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels, kh, kw)
        fans = (self.in_channels * kh * kw, self.out_channels * kh * kw)
        self.weight = Parameter("weight", shape, init=get_initializer(init, "Conv2D init"), value=weight,
                                trainable=check_bool(train_weight, "Conv2D train_weight"), fans=fans)
        self.bias = Parameter("bias", (self.out_channels,), init=zeros, value=bias,
                              trainable=check_bool(train_bias, "Conv2D train_bias"), fans=fans) if use_bias else None

    # ------------------------------------------------------------------ structure
    def parameters(self) -> list[Parameter]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != 3:
            hint = (" (images must be (n, channels, height, width): e.g. reshape flat MNIST rows with "
                    "x.reshape(-1, 1, 28, 28) and pass input_shape=(1, 28, 28))" if len(shape) < 3 else "")
            raise ShapeError(f"{self._describe()} expects per-sample inputs shaped (channels, height, width), "
                             f"got {shape}{hint}")
        c, h, w = shape
        if c != self.in_channels:
            raise ShapeError(f"{self._describe()} expects {self.in_channels} input channel(s), but its input has "
                             f"shape {shape} ({c} channel(s))")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
        if ho < 1 or wo < 1:
            raise ShapeError(f"{self._describe()}: the {kh}×{kw} kernel is larger than its padded input "
                             f"{h + 2 * ph}×{w + 2 * pw} (input {h}×{w}, padding {ph}×{pw})")
        return (self.out_channels, ho, wo)

    def _describe(self) -> str:
        return f"Conv2D({self.in_channels}→{self.out_channels}, kernel {pair_text(self.kernel_size)})"

    # ------------------------------------------------------------------ computation
    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        backend = ctx.backend
        xp = backend.xp
        n, c, h, w = x.shape
        (kh, kw), (ph, pw), o = self.kernel_size, self.padding, self.out_channels
        ho, wo = out_size(h, kh, self.stride[0], ph), out_size(w, kw, self.stride[1], pw)
        xw = to_work(xp, x)  # (C, H, W, n): a view
        if ph or pw:
            padded = backend.zeros((c, h + 2 * ph, w + 2 * pw, n))
            xw = set_into(backend, padded, (slice(None), slice(ph, ph + h), slice(pw, pw + w), slice(None)), xw)
        cols = xp.stack(window_views(xw, self.kernel_size, self.stride, (ho, wo)), axis=1)  # (C, kh·kw, Ho, Wo, n)
        cols = xp.reshape(cols, (c * kh * kw, ho * wo * n))
        y = xp.reshape(self.weight.value, (o, c * kh * kw)) @ cols  # (O, Ho·Wo·n): the one GEMM
        if self.bias is not None:
            y += xp.reshape(self.bias.value, (o, 1))
        return from_work(xp, xp.reshape(y, (o, ho, wo, n))), (cols, (n, c, h, w))

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        backend = ctx.backend
        xp = backend.xp
        cols, (n, c, h, w) = saved
        o, ho, wo = self.out_channels, grad_y.shape[2], grad_y.shape[3]
        g = xp.reshape(to_work(xp, grad_y), (o, ho * wo * n))  # a copy unless grad_y's memory is batch-last
        if self.weight.trainable:
            grads.add_matmul(self.weight, g, cols.mT)  # (O, L) @ (L, K): ∂E/∂W as (O, C·kh·kw)
        if self.bias is not None and self.bias.trainable:
            grads.add_matmul(self.bias, g, ctx.ones((ho * wo * n, 1)))
        if not need_input_grad:
            return None
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        weight = xp.reshape(self.weight.value, (o, c * kh * kw))
        dcols = xp.reshape(weight.mT @ g, (c, kh * kw, ho, wo, n))
        parts = [dcols[:, k, ...] for k in range(kh * kw)]
        dx = scatter_windows(backend, parts, (c, h + 2 * ph, w + 2 * pw, n), self.kernel_size, self.stride)
        if ph or pw:
            dx = dx[:, ph:ph + h, pw:pw + w, :]
        return from_work(xp, dx)

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                               "kernel_size": pair_config(self.kernel_size)}
        if self.stride != (1, 1):
            cfg["stride"] = pair_config(self.stride)
        if self.padding != (0, 0):
            cfg["padding"] = pair_config(self.padding)
        if not self.use_bias:
            cfg["use_bias"] = False
        if isinstance(self.init, str) and self.init != "he_uniform":
            cfg["init"] = self.init  # a callable initialiser is not recorded: it matters only before training
        return cfg | frozen_flags(self.weight, self.bias)

    def clone(self) -> Conv2D:
        twin = Conv2D(**self.config())
        twin.init = self.init
        twin.weight.init = self.weight.init
        return twin
