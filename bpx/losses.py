"""Loss functions: value (a 0-d device array) and gradient ∂E/∂y with respect to the outputs.

Shapes: outputs ``y`` are ``(n, k)``. Every loss is averaged over the ``n`` samples of a batch,
so gradients carry the factor 1/n. Targets are converted and validated by
:meth:`Loss.prepare_targets`: host targets (lists, NumPy) are checked on the host for free;
targets already on the device are only shape-checked here (``fit`` checks their values once).
"""

from __future__ import annotations

from typing import Any

import array_api_compat as aac

from .backend import Backend, is_host, to_host
from .layers import sigmoid


class Loss:
    """Base class: ``value(y, t)``, ``grad(y, t)`` and the fused ``value_and_grad(y, t)``."""

    name = "loss"
    #: True when targets are class labels (or one-hot rows) and accuracy is meaningful.
    classification = False

    def value(self, y: Any, t: Any, xp: Any = None) -> Any:
        return self.value_and_grad(y, t, xp)[0]

    def grad(self, y: Any, t: Any, xp: Any = None) -> Any:
        return self.value_and_grad(y, t, xp)[1]

    def value_and_grad(self, y: Any, t: Any, xp: Any = None) -> tuple[Any, Any]:
        """``(E, ∂E/∂y)`` for outputs ``y`` ``(n, k)`` and prepared targets ``t``; ``xp`` is the
        namespace of ``y`` (looked up when not given)."""
        raise NotImplementedError

    def prepare_targets(self, t: Any, backend: Backend, n_outputs: int, name: str = "targets") -> Any:
        """Targets as float arrays shaped ``(n, n_outputs)`` on ``backend``'s device; ``name``
        is what error messages call them."""
        t = backend.asarray(t, name=name)
        xp = backend.xp
        if xp.isdtype(t.dtype, "bool") or not xp.isdtype(t.dtype, ("real floating", "integral")):
            raise ValueError(f"{self.name}: {name} must be real numbers, got dtype {t.dtype}")
        if t.ndim != 2 or t.shape[1] != n_outputs:
            hint = "; reshape to (n, 1)" if t.ndim == 1 and n_outputs == 1 else ""
            raise ValueError(f"{self.name}: {name} of shape {tuple(t.shape)} do not fit the "
                             f"network's {n_outputs} outputs; expected (n, {n_outputs}){hint}")
        return t if t.dtype == backend.dtype else xp.astype(t, backend.dtype)

    def check_batch(self, y: Any, t: Any) -> None:
        if t.shape[0] != y.shape[0]:
            raise ValueError(f"{self.name}: {t.shape[0]} targets for {y.shape[0]} samples")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class HalfSquaredError(Loss):
    """E = Σ_outputs ½(t − o)², averaged over samples: the textbook E_total of one sample."""

    name = "half_squared_error"

    def value_and_grad(self, y: Any, t: Any, xp: Any = None) -> tuple[Any, Any]:
        xp = xp or _ns(y)
        d = y - t
        n = y.shape[0]
        return xp.sum(d * d) * (0.5 / n), d * (1.0 / n)


class MeanSquaredError(Loss):
    """E = mean over samples and outputs of (t − o)²."""

    name = "mean_squared_error"

    def value_and_grad(self, y: Any, t: Any, xp: Any = None) -> tuple[Any, Any]:
        xp = xp or _ns(y)
        d = y - t
        size = y.shape[0] * y.shape[1]
        return xp.sum(d * d) * (1.0 / size), d * (2.0 / size)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits): E = −mean_samples Σ_k t_k log softmax(z)_k.

    Takes *logits* (no ``Softmax`` layer before it) and is stable for any logit size.
    Targets: integer class labels ``(n,)`` in ``[0, k)``, or rows of class probabilities
    (one-hot) ``(n, k)``. Gradient: ``(softmax(z) − t) / n``.
    """

    name = "softmax_cross_entropy"
    classification = True

    def prepare_targets(self, t: Any, backend: Backend, n_outputs: int, name: str = "targets") -> Any:
        host = _host_if_cheap(t)
        if host is not None and host.ndim == 1:
            if host.dtype.kind not in "iu":
                raise ValueError(f"{self.name}: class labels must be integers, got dtype {host.dtype}")
            check_labels(host, n_outputs, f"{self.name}: {name}")
        t = backend.asarray(t, backend.int_dtype if host is not None and host.ndim == 1 else None, name=name)
        xp = backend.xp
        if t.ndim == 1:
            if not xp.isdtype(t.dtype, "integral"):
                raise ValueError(f"{self.name}: class labels must be integers, got dtype {t.dtype}")
            return t
        return super().prepare_targets(t, backend, n_outputs, name)

    def value_and_grad(self, z: Any, t: Any, xp: Any = None) -> tuple[Any, Any]:
        xp = xp or _ns(z)
        n = z.shape[0]
        s = z - xp.max(z, axis=1, keepdims=True)
        grad = xp.exp(s)  # becomes softmax(z), then the gradient, in place (it is ours)
        total = xp.sum(grad, axis=1, keepdims=True)
        log_total = xp.log(total)
        grad /= total
        if t.ndim == 1:
            value = xp.sum(log_total - xp.take_along_axis(s, t[:, None], axis=1)) * (1.0 / n)
            grad -= one_hot(t, z.shape[1], z.dtype, xp)
        else:
            value = xp.sum(t * (log_total - s)) * (1.0 / n)
            grad *= xp.sum(t, axis=1, keepdims=True)
            grad -= t
        grad *= 1.0 / n
        return value, grad


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy of sigmoid(logits), averaged over samples and outputs.

    Takes *logits*; targets in [0, 1] shaped like the outputs. Gradient ``(σ(z) − t) / (n·k)``.
    """

    name = "binary_cross_entropy"
    classification = True

    def prepare_targets(self, t: Any, backend: Backend, n_outputs: int, name: str = "targets") -> Any:
        host = _host_if_cheap(t)
        if host is not None and host.size and (host.min() < 0 or host.max() > 1):
            raise ValueError(f"{self.name}: {name} must lie in [0, 1], got values in "
                             f"[{host.min()}, {host.max()}]")
        return super().prepare_targets(t, backend, n_outputs, name)

    def value_and_grad(self, z: Any, t: Any, xp: Any = None) -> tuple[Any, Any]:
        xp = xp or _ns(z)
        size = z.shape[0] * z.shape[1]
        e = xp.exp(-xp.abs(z))
        value = xp.sum(xp.maximum(z, 0.0) - z * t + xp.log1p(e)) * (1.0 / size)
        return value, (sigmoid(z, xp) - t) * (1.0 / size)


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (HalfSquaredError, MeanSquaredError, SoftmaxCrossEntropy, BinaryCrossEntropy)
}
_ALIASES = {"hse": "half_squared_error", "mse": "mean_squared_error", "cross_entropy": "softmax_cross_entropy",
            "ce": "softmax_cross_entropy", "bce": "binary_cross_entropy"}


def get_loss(loss: str | Loss) -> Loss:
    """A :class:`Loss` instance from a name (``half_squared_error``, ``mse``, ...) or as is."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    key = str(loss).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)} "
                         f"(aliases: {', '.join(_ALIASES)})")
    return LOSSES[key]()


def one_hot(labels: Any, k: int, dtype: Any, xp: Any = None) -> Any:
    """``(n,)`` integer labels → ``(n, k)`` one-hot rows of ``dtype`` on the labels' device."""
    xp = xp or _ns(labels)
    classes = xp.arange(k, dtype=labels.dtype, device=aac.device(labels))
    return xp.astype(labels[:, None] == classes, dtype)


def check_labels(labels: Any, n_classes: int, name: str = "labels") -> None:
    """Raise ValueError unless every label is in ``[0, n_classes)``. Reads ``labels`` on the host."""
    host = to_host(labels)
    if host.size == 0:
        return
    low, high = host.min(), host.max()
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(f"{name}: class label {bad} is outside [0, {n_classes}) "
                         f"(the network has {n_classes} outputs)")


def _host_if_cheap(t: Any) -> Any:
    """``t`` as a NumPy array when it already lives on the host (no device sync), else None."""
    return to_host(t) if is_host(t) else None


def _ns(x: Any) -> Any:
    return aac.array_namespace(x)
