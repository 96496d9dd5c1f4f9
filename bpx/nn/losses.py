"""Loss functions: the error E of a batch (a 0-d device array) and ∂E/∂outputs.

Shapes: outputs are ``(n, k)``; every loss is averaged over the ``n`` samples of a batch, so its
gradient carries the factor 1/n. Targets are converted and validated by
:meth:`Loss.prepare_targets` — host targets (lists, NumPy) are checked on the host for free;
targets already on the device are only shape-checked there (``fit`` and ``evaluate`` check their
values once, with one read-back).

Naming: ``outputs`` are what the network computes (logits for the logit losses), ``targets``
what it should compute (class labels or rows of numbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import array_api_compat as aac

from ..errors import BpxTypeError, BpxValueError, ShapeError
from ..host.arrays import as_host_array, check_representable, finite_or_raise, is_host
from .activations import sigmoid

if TYPE_CHECKING:
    from ..backend import Backend
    from .layer import Context


#: The metrics ``fit`` and ``evaluate`` can report besides the loss (see :mod:`bpx.training.metrics`).
METRICS = ("accuracy",)


class Loss:
    """Base class: ``value_and_grad(outputs, targets)`` and ``value(outputs, targets)``.

    ``accuracy``: how accuracy is measured for this loss — ``"single_label"`` (the arg-max output
    is the predicted class; targets are labels or rows whose arg-max is the class),
    ``"multi_label"`` (every output is a yes/no decision at logit 0; a sample counts as correct
    when all its decisions are right: subset accuracy, scikit-learn's multi-label definition) or
    ``None`` (regression: no accuracy unless ``fit(metrics=["accuracy"])`` asks for it).
    """

    name: ClassVar[str] = "loss"
    accuracy: ClassVar[str | None] = None
    #: True for losses that take logits and apply their own softmax/sigmoid.
    takes_logits: ClassVar[bool] = False

    def value(self, outputs: Any, targets: Any, ctx: Context | None = None) -> Any:
        """E as a 0-d array (no host synchronisation)."""
        return self.value_and_grad(outputs, targets, ctx)[0]

    def value_and_grad(self, outputs: Any, targets: Any, ctx: Context | None = None) -> tuple[Any, Any]:
        """``(E, ∂E/∂outputs)`` for outputs ``(n, k)`` and prepared targets. The gradient is a new
        array the caller may overwrite. ``ctx`` (optional) supplies the namespace and caches."""
        raise NotImplementedError

    def batch_targets(self, targets: Any, batches: int, backend: Backend, output_shape: tuple[int, ...]) -> list[Any]:
        """The prepared targets of ``batches`` equal consecutive batches (their rows, stacked) split
        into one item per batch, as this loss takes them in a training step. ``fit`` gathers several
        batches at once and calls this once for them, so a loss may convert its targets here at a
        fraction of the per-step cost (:class:`SoftmaxCrossEntropy` turns labels into
        :class:`MeanOneHot` rows)."""
        return backend.split_batches(targets, batches)

    def prepare_targets(self, targets: Any, backend: Backend, output_shape: tuple[int, ...],
                        name: str = "targets") -> Any:
        """Targets as a float array ``(n, *output_shape)`` on ``backend``'s device."""
        if is_host(targets):
            host = as_host_array(targets, name)
            if host.dtype.kind == "b":
                raise BpxTypeError(f"{self.name}: {name} must be numbers, got booleans (cast them to float)")
            _check_target_shape(tuple(host.shape), output_shape, self.name, name)
            finite_or_raise(host, name)
            check_representable(host, backend.master_dtype_name, name)
            return backend.from_host(host, backend.master_dtype)
        t = backend.asarray(targets, name=name)
        xp = backend.xp
        if xp.isdtype(t.dtype, "bool") or not xp.isdtype(t.dtype, ("real floating", "integral")):
            raise BpxTypeError(f"{self.name}: {name} must be real numbers, got dtype {t.dtype}")
        _check_target_shape(tuple(t.shape), output_shape, self.name, name)
        return t if t.dtype == backend.master_dtype else xp.astype(t, backend.master_dtype)

    def check_device_targets(self, targets: Any, output_shape: tuple[int, ...], name: str) -> None:
        """Check target values that already lived on the device (one read-back; see ``fit``)."""

    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable (saved in checkpoints)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash(type(self).__name__)


def _check_target_shape(shape: tuple[int, ...], output_shape: tuple[int, ...], loss: str, name: str) -> None:
    if len(shape) != 1 + len(output_shape) or shape[1:] != tuple(output_shape):
        hint = "; reshape them to (n, 1)" if len(shape) == 1 and tuple(output_shape) == (1,) else ""
        raise ShapeError(f"{loss}: {name} of shape {shape} do not fit the network's outputs {tuple(output_shape)}; "
                         f"expected (n, {', '.join(map(str, output_shape))}){hint}")


def _xp(outputs: Any, ctx: Context | None) -> Any:
    return ctx.backend.xp if ctx is not None else aac.array_namespace(outputs)


class HalfSquaredError(Loss):
    """E = Σ_outputs ½(t − o)², averaged over samples: the textbook E_total of one sample."""

    name = "half_squared_error"

    def value_and_grad(self, outputs: Any, targets: Any, ctx: Context | None = None) -> tuple[Any, Any]:
        xp = _xp(outputs, ctx)
        d = outputs - targets
        n = outputs.shape[0]
        return xp.sum(d * d) * (0.5 / n), d * (1.0 / n)


class MeanSquaredError(Loss):
    """E = mean over samples and outputs of (t − o)²."""

    name = "mean_squared_error"

    def value_and_grad(self, outputs: Any, targets: Any, ctx: Context | None = None) -> tuple[Any, Any]:
        xp = _xp(outputs, ctx)
        d = outputs - targets
        size = 1
        for s in outputs.shape:
            size *= s
        return xp.sum(d * d) * (1.0 / size), d * (2.0 / size)


class MeanOneHot:
    """Class labels of one batch of ``n`` samples as rows ``(n, k)``: one-hot rows divided by ``n``.

    ``fit`` gives :class:`SoftmaxCrossEntropy` its checked labels in this form (made once for
    several batches, see :meth:`Loss.batch_targets`): every row sums to 1/n, so the batch mean is a
    plain sum and the gradient ``softmax(z)/n − rows`` needs no per-row correction.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.rows.shape)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits): E = −mean_samples Σ_k t_k log softmax(z)_k.

    Takes *logits* (no ``Softmax`` layer before it) and is stable for any logit size. Targets:
    integer class labels ``(n,)`` in ``[0, k)``, or rows ``(n, k)`` of non-negative weights (one-hot
    rows, or probabilities). Gradient ``(softmax(z)·Σ_k t_k − t) / n`` (``softmax(z) − t`` over n
    when rows sum to 1). Labels already on the device are not range-checked per call (that would
    read them back): an out-of-range label gets an all-zero target row, on every backend;
    ``fit`` and ``evaluate`` check device labels once.
    """

    name = "softmax_cross_entropy"
    accuracy = "single_label"
    takes_logits = True

    def prepare_targets(self, targets: Any, backend: Backend, output_shape: tuple[int, ...],
                        name: str = "targets") -> Any:
        if len(output_shape) != 1:
            raise ShapeError(f"{self.name} needs outputs shaped (n, k), but the network's are (n, {output_shape})")
        k = output_shape[0]
        if is_host(targets):
            host = as_host_array(targets, name)
            if host.ndim == 1:
                if host.dtype.kind not in "iu":
                    raise BpxTypeError(f"{self.name}: class labels ({name}) must be integers, got dtype "
                                       f"{host.dtype}" + (" (cast them with .astype(int))" if host.dtype.kind == "f"
                                                          else ""))
                check_label_range(host, k, f"{self.name}: {name}")
                return backend.asarray(host, backend.int_dtype, name=name)
            if host.dtype.kind in "iuf" and host.size and host.min() < 0:
                raise BpxValueError(f"{self.name}: {name} rows must be non-negative weights (one-hot rows or "
                                    f"probabilities), got the value {host.min()}")
        else:
            t = backend.asarray(targets, name=name)
            if t.ndim == 1:
                if not backend.xp.isdtype(t.dtype, "integral"):
                    raise BpxTypeError(f"{self.name}: class labels ({name}) must be integers, got dtype {t.dtype}")
                return t
        return super().prepare_targets(targets, backend, output_shape, name)

    def check_device_targets(self, targets: Any, output_shape: tuple[int, ...], name: str) -> None:
        from ..host.arrays import to_host

        if targets.ndim == 1:
            check_label_range(to_host(targets), output_shape[0], f"{self.name}: {name}")
        elif targets.shape[0]:
            low = float(to_host(aac.array_namespace(targets).min(targets)))
            if low < 0:
                raise BpxValueError(f"{self.name}: {name} rows must be non-negative weights (one-hot rows or "
                                    f"probabilities), got the value {low}")

    def batch_targets(self, targets: Any, batches: int, backend: Backend, output_shape: tuple[int, ...]) -> list[Any]:
        if targets.ndim != 1:
            return super().batch_targets(targets, batches, backend, output_shape)
        n = targets.shape[0] // batches
        rows = one_hot(targets, output_shape[0], backend.master_dtype, backend.xp) * (1.0 / n)
        return [MeanOneHot(r) for r in backend.split_batches(rows, batches)]

    def value_and_grad(self, outputs: Any, targets: Any, ctx: Context | None = None) -> tuple[Any, Any]:
        xp = _xp(outputs, ctx)
        z, n, k = outputs, outputs.shape[0], outputs.shape[1]
        s = z - xp.max(z, axis=1, keepdims=True)  # the exponents are ≤ 0: no overflow
        grad = xp.exp(s)  # becomes softmax(z), then the gradient, in place (it is ours)
        total = xp.sum(grad, axis=1, keepdims=True)
        if isinstance(targets, MeanOneHot):  # 11 operations: fit's steps
            t = targets.rows
            value = xp.sum(t * (xp.log(total) - s))
            total *= float(n)
            grad /= total
            grad -= t
            return value, grad
        grad /= total
        if targets.ndim == 1:
            t = xp.astype(targets[:, None] == _classes(k, targets, xp, ctx), z.dtype)
        else:
            t = targets
        grad *= xp.sum(t, axis=1, keepdims=True)  # 1 for a label; 0 for the all-zero row of one out of range
        value = xp.sum(t * (xp.log(total) - s)) * (1.0 / n)
        grad -= t
        grad *= 1.0 / n
        return value, grad


def _classes(k: int, labels: Any, xp: Any, ctx: Context | None) -> Any:
    """``arange(k)`` of the labels' dtype on their device (cached per network where allowed)."""
    if ctx is not None:
        return ctx.arange(k, labels.dtype)
    return xp.arange(k, dtype=labels.dtype, device=aac.device(labels))


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy of sigmoid(logits), averaged over samples and outputs.

    Takes *logits*; targets in [0, 1] shaped like the outputs. Gradient ``(σ(z) − t) / (n·k)``.
    Accuracy is multi-label subset accuracy (see :class:`Loss`).
    """

    name = "binary_cross_entropy"
    accuracy = "multi_label"
    takes_logits = True

    def prepare_targets(self, targets: Any, backend: Backend, output_shape: tuple[int, ...],
                        name: str = "targets") -> Any:
        if is_host(targets):
            host = as_host_array(targets, name)
            if host.dtype.kind in "iuf" and host.size:
                finite_or_raise(host, name)
                if host.min() < 0 or host.max() > 1:
                    raise BpxValueError(f"{self.name}: {name} must lie in [0, 1], got values in "
                                        f"[{host.min()}, {host.max()}]")
        return super().prepare_targets(targets, backend, output_shape, name)

    def check_device_targets(self, targets: Any, output_shape: tuple[int, ...], name: str) -> None:
        from ..host.arrays import to_host

        host = to_host(targets)
        if host.size and (host.min() < 0 or host.max() > 1):
            raise BpxValueError(f"{self.name}: {name} must lie in [0, 1], got values in [{host.min()}, {host.max()}]")

    def value_and_grad(self, outputs: Any, targets: Any, ctx: Context | None = None) -> tuple[Any, Any]:
        xp = _xp(outputs, ctx)
        z = outputs
        size = z.shape[0] * z.shape[1]
        e = xp.exp(-xp.abs(z))
        value = xp.sum(xp.maximum(z, 0.0) - z * targets + xp.log1p(e)) * (1.0 / size)
        return value, (sigmoid(z, xp) - targets) * (1.0 / size)


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (HalfSquaredError, MeanSquaredError, SoftmaxCrossEntropy, BinaryCrossEntropy)
}
ALIASES = {"hse": "half_squared_error", "mse": "mean_squared_error", "cross_entropy": "softmax_cross_entropy",
           "ce": "softmax_cross_entropy", "bce": "binary_cross_entropy"}


def get_loss(loss: str | Loss | type[Loss]) -> Loss:
    """A :class:`Loss` instance from a name (``half_squared_error``, ``mse``, ...), a class, or as is."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if not isinstance(loss, str):
        raise BpxTypeError(f"loss must be a name ({', '.join(LOSSES)}) or a bpx Loss, got {type(loss).__name__}")
    key = loss.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in LOSSES:
        raise BpxValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)} "
                            f"(aliases: {', '.join(ALIASES)})")
    return LOSSES[key]()


def check_label_range(labels: Any, n_classes: int, name: str = "labels") -> None:
    """Raise :class:`BpxValueError` unless every host label is in ``[0, n_classes)``."""
    if labels.size == 0:
        return
    low, high = labels.min(), labels.max()
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise BpxValueError(f"{name}: class label {bad} is outside [0, {n_classes}) "
                            f"(the network has {n_classes} outputs)")


def one_hot(labels: Any, k: int, dtype: Any, xp: Any = None) -> Any:
    """``(n,)`` integer labels → ``(n, k)`` one-hot rows of ``dtype`` on the labels' device."""
    xp = xp or aac.array_namespace(labels)
    classes = xp.arange(k, dtype=labels.dtype, device=aac.device(labels))
    return xp.astype(labels[:, None] == classes, dtype)
