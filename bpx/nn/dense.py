"""``Dense``: the fully connected layer ``y = x @ W + b``."""

from __future__ import annotations

from typing import Any

from ..checks import check_bool, check_int
from ..errors import BpxValueError, ShapeError
from ..host.init import UserInitializer, get_initializer, zeros
from .layer import Context, Layer, frozen_flags
from .parameter import Gradients, Parameter


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``: inputs ``(n, in_features)``, ``W`` shaped
    ``(in_features, out_features)``, ``b`` shaped ``(out_features,)``, outputs ``(n, out_features)``.

    Args:
        weight: explicit initial ``W`` (nested lists or any array, shape ``(in, out)``, or a
            number filling it); otherwise drawn with ``init`` from the network's seed.
        bias: explicit initial ``b``: a number (filling all outputs) or shape ``(out,)``;
            default zeros. ``use_bias=False`` drops the bias altogether.
        init: initialiser name (``glorot_uniform``, ``he_uniform``, ...) or ``f(rng, shape)``.
        train_weight, train_bias: ``False`` freezes that parameter (it keeps its value).
    """

    def __init__(self, in_features: int, out_features: int, *, weight: Any = None, bias: Any = None,
                 init: str | UserInitializer = "glorot_uniform", use_bias: bool = True,
                 train_weight: bool = True, train_bias: bool = True) -> None:
        self.in_features = check_int(in_features, "Dense in_features")
        self.out_features = check_int(out_features, "Dense out_features")
        self.use_bias = check_bool(use_bias, "Dense use_bias")
        if bias is not None and not use_bias:
            raise BpxValueError("Dense: bias values given but use_bias=False")
        self.init = init
        fans = (self.in_features, self.out_features)
        self.weight = Parameter("weight", fans, init=get_initializer(init, "Dense init"), value=weight,
                                trainable=check_bool(train_weight, "Dense train_weight"), fans=fans, owner="Dense")
        self.bias = Parameter("bias", (self.out_features,), init=zeros, value=bias,
                              trainable=check_bool(train_bias, "Dense train_bias"), fans=fans,
                              owner="Dense") if use_bias else None

    def parameters(self) -> list[Parameter]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def input_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(input_shape) != (self.in_features,):
            hint = "; put a bpx.Flatten() before it" if len(input_shape) > 1 else ""
            raise ShapeError(f"Dense({self.in_features}, {self.out_features}) expects {self.in_features} input "
                             f"features per sample, but its input has shape {tuple(input_shape)}{hint}")
        return (self.out_features,)

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        joint = self._joint() if ctx.training and ctx.backend.fold_bias else None
        if joint is not None:  # the bias trick in training: [x, 1] @ [W; b], one product for both gradients
            x = ctx.backend.xp.concat([x, ctx.ones((x.shape[0], 1))], axis=1)
            return ctx.backend.matmul(x, joint), x
        y = ctx.backend.matmul(x, self.weight.value)
        if self.bias is not None:
            y += self.bias.value
        return y, x

    def _joint(self) -> Any:
        """``[W; b]`` shaped ``(in + 1, out)`` as one view of the parameter buffer, when the bias is
        there, trained alike and stored right after ``W`` (else ``None``)."""
        bias = self.bias
        if bias is None or bias.trainable != self.weight.trainable:
            return None
        return self.weight.joint_value(bias, (self.in_features + 1, self.out_features))

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        x = saved  # the input, or [input, 1] when the forward used the bias trick
        if x.shape[1] != self.in_features:
            if self.weight.trainable:
                grads.add_matmul_joint(self.weight, self.bias, x.T, grad_y)  # type: ignore[arg-type]
        else:
            if self.weight.trainable:
                grads.add_matmul(self.weight, x.T, grad_y)
            if self.bias is not None and self.bias.trainable:
                # Σ over the batch as a product with a row of ones: 2-3x faster than xp.sum(axis=0) on NumPy
                grads.add_matmul(self.bias, ctx.ones((1, grad_y.shape[0])), grad_y)
        return grad_y @ self.weight.value_t if need_input_grad else None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features}
        if isinstance(self.init, str) and self.init != "glorot_uniform":
            cfg["init"] = self.init  # a callable initialiser is not recorded: it matters only before training
        if not self.use_bias:
            cfg["use_bias"] = False
        return cfg | frozen_flags(self.weight, self.bias)

    def clone(self) -> Dense:
        twin = Dense(**self.config())
        twin.init = self.init
        twin.weight.init = self.weight.init
        return twin
