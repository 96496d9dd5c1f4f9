"""Normalisation layers: ``BatchNorm`` (features), ``BatchNorm2D`` (NCHW channels) and ``LayerNorm``.

All three compute ``y = x̂ · weight + bias`` with ``x̂ = (x − mean) / sqrt(var + eps)`` and
learnable ``weight`` (initially ones) and ``bias`` (initially zeros); they differ in which axes
the statistics run over. The conventions are PyTorch's (``torch.nn.BatchNorm1d``,
``BatchNorm2d``, ``LayerNorm``), and the tests compare against those modules in float64:

* the variance that normalises is the biased one (divided by the count ``m``);
* BatchNorm's running variance is updated with the unbiased one (divided by ``m − 1``):
  ``running = (1 − momentum) · running + momentum · batch_statistic``;
* ``eps`` is added to the variance inside the square root.

BatchNorm uses the batch's statistics in training mode and its running statistics (buffers,
saved in checkpoints) in inference mode; LayerNorm computes per-sample statistics and behaves the
same in both modes. Derivations and choices: ``docs/regularisation.md``.
"""

from __future__ import annotations

from typing import Any

from ..checks import check_bool, check_float, check_int
from ..errors import BpxValueError, ShapeError
from ..host.init import ones, zeros
from .layer import Context, Layer, frozen_flags
from .parameter import Buffer, Gradients, Parameter


class _Affine:
    """Shared parts: the ``weight``/``bias`` pair over ``features`` and the configuration (a mixin,
    not a :class:`Layer`, so that it is not registered as a layer type)."""

    def _init_affine(self, features: int, eps: float, train_weight: bool, train_bias: bool) -> None:
        kind = type(self).__name__
        self.features = check_int(features, f"{kind} features")
        self.eps = check_float(eps, f"{kind} eps", 0.0, low_open=True)
        fans = (self.features, self.features)
        self.weight = Parameter("weight", (self.features,), init=ones, fans=fans,
                                trainable=check_bool(train_weight, f"{kind} train_weight"))
        self.bias = Parameter("bias", (self.features,), init=zeros, fans=fans,
                              trainable=check_bool(train_bias, f"{kind} train_bias"))

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def config(self) -> dict[str, Any]:
        return {"features": self.features, "eps": self.eps} | frozen_flags(self.weight, self.bias)


class BatchNorm(_Affine, Layer):
    """Batch normalisation over the batch axis, per feature: inputs ``(n, features)``.

    Training mode (``fit``, ``train_step``, ``net.forward(x, training=True)``): each feature is
    normalised with the mean and the *biased* variance of the batch, and the running statistics
    (buffers ``running_mean``, initially 0, and ``running_var``, initially 1) move towards the
    batch's mean and *unbiased* variance by ``momentum``:
    ``running = (1 − momentum) · running + momentum · batch``, as in ``torch.nn.BatchNorm1d``.
    Inference mode (``predict``, ``evaluate``, validation, ``net.forward(x)``): the running
    statistics normalise, so the layer is a fixed affine map per feature.

    The running statistics change in every training-mode forward pass, including
    ``net.forward(x, training=True)``; a layer used at several positions updates them once per use,
    in network order (as a PyTorch module called several times).

    Only per-sample shape ``(features,)`` is accepted (anything else raises :class:`ShapeError`
    when the network is built); use :class:`BatchNorm2D` for NCHW images (statistics per channel
    over the batch and both spatial axes) or :class:`LayerNorm` for per-sample statistics.

    A training batch of one sample raises :class:`bpx.BpxValueError`, as in PyTorch: its variance
    is 0 (every output would be the bias and no gradient would reach the input) and the unbiased
    running variance divides by ``m − 1 = 0``. With ``fit``, choose a ``batch_size`` that does not
    leave a last batch of one sample (``n_samples % batch_size != 1``). Inference takes any batch.

    Args:
        features: the number of features per sample.
        momentum: weight of the batch statistics in the running averages, in ``[0, 1]``.
        eps: added to the variance before the square root (> 0).
        train_weight, train_bias: ``False`` freezes that parameter.
    """

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5, *, train_weight: bool = True,
                 train_bias: bool = True) -> None:
        self._init_affine(features, eps, train_weight, train_bias)
        self.momentum = check_float(momentum, f"{type(self).__name__} momentum", 0.0, 1.0)
        self.running_mean = Buffer("running_mean", (self.features,), 0.0)
        self.running_var = Buffer("running_var", (self.features,), 1.0)

    def buffers(self) -> list[Buffer]:
        return [self.running_mean, self.running_var]

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["momentum"] = self.momentum
        return cfg

    def input_shape(self) -> tuple[int, ...] | None:
        return (self.features,)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(input_shape) != (self.features,):
            raise ShapeError(f"BatchNorm({self.features}) expects {self.features} features per sample, but its input "
                             f"has shape {tuple(input_shape)}" + _shape_hint(input_shape))
        return tuple(input_shape)

    # ------------------------------------------------------------------ axes (BatchNorm2D overrides)
    def _stat_shape(self) -> tuple[int, ...]:
        """Shape of per-feature statistics, broadcastable against the input."""
        return (1, self.features)

    def _count(self, x: Any) -> int:
        """Values per feature in the batch ``x`` (the ``m`` of the statistics)."""
        return int(x.shape[0])

    def _feature_sum(self, a: Any, ctx: Context) -> Any:
        """Σ of ``a`` over every axis but the feature axis, shaped :meth:`_stat_shape` (a product
        with a row of ones: 2-3× faster than ``xp.sum(axis=0)`` on NumPy)."""
        return ctx.ones((1, a.shape[0])) @ a

    # ------------------------------------------------------------------ passes
    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        xp = ctx.backend.xp
        shape = self._stat_shape()
        weight = xp.reshape(self.weight.value, shape)
        bias = xp.reshape(self.bias.value, shape)
        if not ctx.training:
            mean = xp.reshape(self.running_mean.value, shape)
            inv_std = 1.0 / xp.sqrt(xp.reshape(self.running_var.value, shape) + self.eps)
            scale = weight * inv_std
            y = x * scale
            y += bias - mean * scale
            return y, (False, x, mean, inv_std)  # buffers are replaced, never mutated: safe to keep
        m = self._count(x)
        if m < 2:
            raise BpxValueError(f"{type(self).__name__} in training mode needs more than one value per feature to "
                                f"compute batch statistics, got an input of shape {tuple(x.shape)} (PyTorch refuses "
                                "it too); use batches of at least 2 samples (with fit: a batch_size that does not "
                                "leave a last batch of one sample)")
        inv_m = 1.0 / m
        mean = self._feature_sum(x, ctx) * inv_m
        xhat = x - mean
        var = self._feature_sum(xhat * xhat, ctx) * inv_m
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat *= inv_std  # a fresh array: in place on mutable backends, rebinds on JAX
        y = xhat * weight
        y += bias
        if self.momentum > 0.0:
            self._update_running(xp, mean, var, m)
        return y, (True, xhat, inv_std, None)

    def _update_running(self, xp: Any, mean: Any, var: Any, m: int) -> None:
        """Replace (never update in place) the running statistics with their moving averages."""
        k, keep = self.momentum, 1.0 - self.momentum
        flat = (self.features,)
        self.running_mean.value = keep * self.running_mean.value + k * xp.reshape(mean, flat)
        self.running_var.value = keep * self.running_var.value + (k * m / (m - 1)) * xp.reshape(var, flat)

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        xp = ctx.backend.xp
        shape = self._stat_shape()
        training, a, b, c = saved
        if training:
            xhat, inv_std = a, b
        else:
            x, mean, inv_std = a, b, c
            xhat = (x - mean) * inv_std
        g = grad_y
        want_weight, want_bias = grads.wants(self.weight), grads.wants(self.bias)
        sum_g = self._feature_sum(g, ctx) if want_bias or (training and need_input_grad) else None
        sum_gx = self._feature_sum(g * xhat, ctx) if want_weight or (training and need_input_grad) else None
        if want_weight:
            grads.add(self.weight, xp.reshape(sum_gx, (self.features,)))
        if want_bias:
            grads.add(self.bias, xp.reshape(sum_g, (self.features,)))
        if not need_input_grad:
            return None
        scale = xp.reshape(self.weight.value, shape) * inv_std
        if training:
            # ∂E/∂x = w/σ · (g − mean(g) − x̂ · mean(g·x̂)): the batch statistics depend on x too
            inv_m = 1.0 / self._count(g)
            g -= xhat * (sum_gx * inv_m)  # in place: grad_y is ours
            g -= sum_g * inv_m
        g *= scale
        return g


class BatchNorm2D(BatchNorm):
    """Batch normalisation per channel of NCHW images: inputs ``(n, channels, H, W)``, statistics
    over the batch and both spatial axes (``m = n·H·W`` values per channel), as in
    ``torch.nn.BatchNorm2d``. Everything else as :class:`BatchNorm` (``features`` is the number
    of channels); a training batch of one sample is fine as long as ``H·W > 1``.
    """

    def input_shape(self) -> tuple[int, ...] | None:
        return None  # (channels, H, W): the image size is not the layer's

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != 3 or shape[0] != self.features:
            raise ShapeError(f"BatchNorm2D({self.features}) expects per-sample inputs ({self.features}, H, W) "
                             f"(NCHW), but its input has shape {shape}")
        return shape

    def _stat_shape(self) -> tuple[int, ...]:
        return (1, self.features, 1, 1)

    def _count(self, x: Any) -> int:
        return int(x.shape[0]) * int(x.shape[2]) * int(x.shape[3])

    def _feature_sum(self, a: Any, ctx: Context) -> Any:
        return ctx.backend.xp.sum(a, axis=(0, 2, 3), keepdims=True)


class LayerNorm(_Affine, Layer):
    """Layer normalisation over the last axis: each sample (each row of ``features`` values) is
    normalised with its own mean and biased variance, then scaled by ``weight`` and shifted by
    ``bias`` (both shaped ``(features,)``), as ``torch.nn.LayerNorm(features)``.

    Inputs ``(n, ..., features)``: any per-sample shape whose last axis has ``features`` values
    (e.g. ``(features,)`` or ``(sequence, features)``). No running statistics: training and
    inference mode compute the same thing, and any batch size works.

    Args:
        features: the size of the last axis.
        eps: added to the variance before the square root (> 0).
        train_weight, train_bias: ``False`` freezes that parameter.
    """

    def __init__(self, features: int, eps: float = 1e-5, *, train_weight: bool = True,
                 train_bias: bool = True) -> None:
        self._init_affine(features, eps, train_weight, train_bias)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if not shape or shape[-1] != self.features:
            raise ShapeError(f"LayerNorm({self.features}) normalises a last axis of {self.features} values, but its "
                             f"input has per-sample shape {shape}")
        return shape

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        xp = ctx.backend.xp
        xhat = x - xp.mean(x, axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(xp.mean(xhat * xhat, axis=-1, keepdims=True) + self.eps)
        xhat *= inv_std  # a fresh array: in place on mutable backends, rebinds on JAX
        y = xhat * self.weight.value
        y += self.bias.value
        return y, (xhat, inv_std)

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        xp = ctx.backend.xp
        xhat, inv_std = saved
        g = grad_y
        if grads.wants(self.weight) or grads.wants(self.bias):
            rows = (-1, self.features)  # Σ over every axis but the last: a product with a row of ones
            g2 = xp.reshape(g, rows)
            ones = ctx.ones((1, g2.shape[0]))
            if grads.wants(self.weight):
                grads.add_matmul(self.weight, ones, xp.reshape(g * xhat, rows))
            if grads.wants(self.bias):
                grads.add_matmul(self.bias, ones, g2)
        if not need_input_grad:
            return None
        # ∂E/∂x = (1/σ) · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂)) with ĝ = g·w, means over the last axis
        gw = g * self.weight.value
        dx = gw - xp.mean(gw, axis=-1, keepdims=True)
        dx -= xhat * xp.mean(gw * xhat, axis=-1, keepdims=True)
        dx *= inv_std
        return dx


def _shape_hint(input_shape: tuple[int, ...]) -> str:
    if len(input_shape) == 3:
        return f"; for NCHW images use BatchNorm2D({input_shape[0]})"
    if len(input_shape) > 1:
        return "; flatten first, or use LayerNorm for the last axis"
    return ""
