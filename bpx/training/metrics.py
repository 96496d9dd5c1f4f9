"""Accuracy, counted on the device (no host synchronisation).

What accuracy means is decided once per dataset by :func:`accuracy_reference`:

* **single-label** (softmax cross-entropy, or ``metrics=["accuracy"]`` with a squared error on
  rows of several outputs): the predicted class is the arg-max output; the reference is the
  class label, or the arg-max of a target row.
* **multi-label** (binary cross-entropy): each output is a yes/no decision at logit 0 against
  target ≥ 0.5, and a sample counts as correct when *all* its decisions are right (subset
  accuracy, scikit-learn's definition for multi-label data; with one output it is the usual
  binary accuracy).
* regression: no accuracy.
"""

from __future__ import annotations

from typing import Any

from ..errors import BpxValueError
from ..nn.losses import METRICS, Loss


def resolve_metrics(metrics: Any, loss: Loss) -> list[str]:
    """The metric names ``fit`` reports: ``None`` → the loss's default (accuracy for the
    classification losses, nothing for regression); else a list of names from :data:`METRICS`."""
    if metrics is None:
        return ["accuracy"] if loss.accuracy is not None else []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise BpxValueError(f"metrics must be a list of names such as ['accuracy'], got {metrics!r}")
    for name in metrics:
        if name not in METRICS:
            raise BpxValueError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def accuracy_kind(loss: Loss, targets: Any) -> str:
    """``"single_label"`` or ``"multi_label"`` for ``targets`` of ``loss`` (raises when accuracy
    cannot be defined: one regression output)."""
    if loss.accuracy == "multi_label":
        return "multi_label"
    if targets.ndim == 1 or (targets.ndim == 2 and targets.shape[1] > 1) or loss.accuracy == "single_label":
        return "single_label"  # a classification loss on one output has one class: rows (n, 1) are fine
    raise BpxValueError(f"accuracy needs class labels or rows of several outputs; the targets of {loss.name} here "
                        f"have shape {tuple(targets.shape)} (a regression: drop metrics=['accuracy'])")


def accuracy_reference(loss: Loss, targets: Any, xp: Any) -> Any:
    """What predictions are compared with: ``(n,)`` class labels (single-label) or ``(n, k)``
    booleans (multi-label), computed once per dataset."""
    if accuracy_kind(loss, targets) == "multi_label":
        return targets >= 0.5
    return targets if targets.ndim == 1 else xp.argmax(targets, axis=1)


def predictions(outputs: Any, reference: Any, xp: Any) -> Any:
    """What ``outputs`` ``(n, k)`` predict, in the form of ``reference``: the arg-max classes ``(n,)``
    (single-label) or the decisions ``outputs > 0`` ``(n, k)`` (multi-label)."""
    return xp.argmax(outputs, axis=1) if reference.ndim == 1 else outputs > 0


def count_matches(predicted: Any, reference: Any, xp: Any) -> Any:
    """The number of samples whose :func:`predictions` equal ``reference`` (0-d integer array)."""
    if reference.ndim == 2:
        return xp.count_nonzero(xp.all(predicted == reference, axis=1))
    return xp.count_nonzero(predicted == reference)


def correct_count(outputs: Any, reference: Any, xp: Any) -> Any:
    """The number of correct predictions among ``outputs`` ``(n, k)`` as a 0-d integer array."""
    return count_matches(predictions(outputs, reference, xp), reference, xp)
