"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW.

``step(params)`` reads each trainable parameter's ``grad`` and updates its ``value``.
Updates are written as augmented assignments on attributes and dict slots
(``p.value -= u``): in place for mutable arrays (NumPy, CuPy, PyTorch, array-api-strict),
and a rebinding of the attribute for immutable ones (JAX), so both are correct.
All state lives on the parameter's device; hyperparameters are Python floats and the step
count a Python int, so no step reads anything back from the device.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace, device

from .layers import Parameter


class Optimizer:
    """Base class. ``lr`` may be changed between steps (learning-rate schedules do)."""

    name = "optimizer"

    def __init__(self, lr: float) -> None:
        lr = float(lr)
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"{type(self).__name__}: learning rate must be a positive finite number, got {lr}")
        self.lr = lr
        self.iterations = 0
        self.state: dict[Parameter, dict[str, Any]] = {}

    def step(self, params: list[Parameter], reuse_grads: bool = False) -> None:
        """Apply one update to every trainable parameter in ``params`` that has a gradient.

        ``reuse_grads=True`` lets the update work in the gradient arrays (saving a temporary
        per parameter); the gradients are dropped afterwards (``grad`` becomes ``None``).
        ``fit`` does this; ``train_step`` keeps the gradients for inspection.
        """
        self.iterations += 1
        for p in params:
            if p.trainable and p.grad is not None:
                state = self.state.get(p)
                if state is None:  # a new parameter (perhaps of a network on another backend)
                    self._namespace = None
                    state = self.state[p] = self.init_state(p)
                self.update(p, p.grad, state, reuse_grads)
                if reuse_grads:
                    p.grad = None

    def init_state(self, p: Parameter) -> dict[str, Any]:
        return {}

    def _xp(self, x: Any) -> Any:
        """The namespace of the parameters, looked up once."""
        xp = self.__dict__.get("_namespace")
        if xp is None:
            xp = self._namespace = array_namespace(x)
        return xp

    def update(self, p: Parameter, g: Any, state: dict[str, Any], scratch: bool = False) -> None:
        """Update ``p.value`` from its gradient ``g``; ``scratch``: ``g`` may be overwritten."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _zeros_like(x: Any) -> Any:
    return array_namespace(x).zeros(x.shape, dtype=x.dtype, device=device(x))


def _check_range(name: str, value: float, low: float, high: float, high_open: bool = True) -> float:
    value = float(value)
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value}")
    return value


class SGD(Optimizer):
    """Gradient descent ``w ← w − lr·g``, with optional momentum (PyTorch's convention:
    ``v ← μv + g``; step ``v``, or ``g + μv`` with Nesterov) and L2 weight decay
    (``g ← g + λw``). With the defaults this is the textbook update."""

    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = _check_range("SGD momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check_range("SGD weight_decay", weight_decay, 0.0, math.inf)
        if nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    def init_state(self, p: Parameter) -> dict[str, Any]:
        return {"velocity": _zeros_like(p.value)} if self.momentum else {}

    def update(self, p: Parameter, g: Any, state: dict[str, Any], scratch: bool = False) -> None:
        if self.weight_decay:
            g, scratch = g + self.weight_decay * p.value, True
        if self.momentum:
            state["velocity"] *= self.momentum
            state["velocity"] += g
            if self.nesterov:
                g, scratch = g + self.momentum * state["velocity"], True
            else:
                g, scratch = state["velocity"], False
        if scratch:  # same arithmetic, without a temporary
            g *= self.lr
            p.value -= g
        else:
            p.value -= self.lr * g

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with PyTorch's update form
    ``w ← w − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)``; ``weight_decay`` is L2 added to the gradient."""

    name = "adam"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.beta1 = _check_range("Adam beta1", beta1, 0.0, 1.0)
        self.beta2 = _check_range("Adam beta2", beta2, 0.0, 1.0)
        self.eps = _check_range("Adam eps", eps, 0.0, math.inf)
        self.weight_decay = _check_range("Adam weight_decay", weight_decay, 0.0, math.inf)

    def init_state(self, p: Parameter) -> dict[str, Any]:
        return {"m": _zeros_like(p.value), "v": _zeros_like(p.value)}

    def apply_decay(self, p: Parameter, g: Any) -> Any:
        return g + self.weight_decay * p.value if self.weight_decay else g

    def update(self, p: Parameter, g: Any, state: dict[str, Any], scratch: bool = False) -> None:
        g = self.apply_decay(p, g)
        b1, b2, t = self.beta1, self.beta2, self.iterations
        state["m"] *= b1
        state["m"] += (1.0 - b1) * g
        state["v"] *= b2
        state["v"] += (1.0 - b2) * (g * g)
        xp = self._xp(p.value)
        # ``** 0.5`` (not math.sqrt): inside a compiled step ``t`` and ``lr`` are traced arrays
        denom = xp.sqrt(state["v"]) * (1.0 / (1.0 - b2**t) ** 0.5) + self.eps
        p.value -= (self.lr / (1.0 - b1**t)) * state["m"] / denom

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): ``w ← w(1 − lr·λ)`` before
    the Adam step. Default ``weight_decay=0.01`` as in PyTorch."""

    name = "adamw"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay)

    def apply_decay(self, p: Parameter, g: Any) -> Any:
        if self.weight_decay:
            p.value *= 1.0 - self.lr * self.weight_decay
        return g


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adam, AdamW)}


def get_optimizer(optimizer: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An :class:`Optimizer` from a name (``sgd``, ``adam``, ``adamw``) and keyword
    hyperparameters, or an instance as is."""
    if isinstance(optimizer, Optimizer):
        if kwargs:
            raise ValueError("hyperparameters are given with the optimizer instance, not separately")
        return optimizer
    key = str(optimizer).strip().lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)
