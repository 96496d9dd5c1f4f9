"""Accuracy, computed on the device as a count of correct predictions (no host sync).

How a prediction is read depends on the targets (decided once per dataset by
:func:`accuracy_labels`): integer labels or one-hot rows → the arg-max output is the class;
binary cross-entropy → each output is a yes/no at logit 0; a single regression output → no
accuracy.
"""

from __future__ import annotations

from typing import Any

from .losses import BinaryCrossEntropy, Loss


def accuracy_labels(t: Any, loss: Loss, xp: Any) -> Any:
    """What predictions are compared with: ``(n,)`` class labels, ``(n, k)`` 0/1 targets for
    binary cross-entropy, or ``None`` when accuracy is meaningless (one regression output)."""
    if isinstance(loss, BinaryCrossEntropy):
        return t > 0.5
    if t.ndim == 1:
        return t
    if t.shape[1] > 1:
        return xp.argmax(t, axis=1)
    return None


def correct_count(y: Any, labels: Any, xp: Any) -> Any:
    """Number of correct predictions in outputs ``y`` ``(n, k)`` as a 0-d float array of y's dtype
    (for binary targets: correct yes/no decisions divided by k, so the maximum is n)."""
    if labels.ndim == 2:
        hits = xp.astype((y > 0) == labels, y.dtype)
        return xp.sum(hits) * (1.0 / y.shape[1])
    return xp.astype(xp.count_nonzero(xp.argmax(y, axis=1) == labels), y.dtype)
