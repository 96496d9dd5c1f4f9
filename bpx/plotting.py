"""Plots with matplotlib, an optional dependency (``pip install "bpx-backprop[plot]"``): learning
curves of a :class:`bpx.History`, and the helpers explain mode uses to draw a network. Files are
written atomically with the usual permission bits."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError
from .host.files import atomic_write, check_writable
from .version import DISTRIBUTION


def require_matplotlib() -> Any:
    """Import matplotlib with the non-interactive Agg backend, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(f'plotting needs matplotlib: pip install "{DISTRIBUTION}[plot]"') from None
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix, PNG when there is none)."""
    path = check_writable(path, "plot")
    fmt = (path.suffix or ".png").lstrip(".").lower()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight")
    with atomic_write(path, "plot") as f:
        f.write(buffer.getvalue())
    return path


def plot_history(history: Any, path: str | Path | None = None, title: str = "", first_epoch: int = 1) -> Any:
    """Loss (left) and accuracy (right, when measured) per epoch, training and validation.
    Saved to ``path`` when given (returns the path), else the matplotlib figure is returned.
    ``first_epoch``: the number of the history's first epoch (a resumed run's is not 1)."""
    plt = require_matplotlib()
    metrics = history.metrics
    has_accuracy = "accuracy" in metrics
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5.5, 4), squeeze=False)
    epochs = list(range(first_epoch, first_epoch + history.epochs))
    panels = [("loss", "loss")] + ([("accuracy", "accuracy (%)")] if has_accuracy else [])
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        scale = 100.0 if key == "accuracy" else 1.0
        for prefix, style, name in (("", "o-", "training"), ("val_", "s--", "validation")):
            values = metrics.get(prefix + key)
            if values:
                ax.plot(epochs[:len(values)], [scale * v for v in values], style, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs if len(epochs) <= 12 else ax.get_xticks())
        if len(epochs) <= 12:
            ax.set_xlim(first_epoch - 0.5, first_epoch + len(epochs) - 0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    if path is None:
        return fig
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)
