"""Learning-curve plots (matplotlib, an optional dependency: ``pip install "bpx[plot]"``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .train import History


def require_matplotlib() -> Any:
    """Import matplotlib with the non-interactive Agg backend, or explain how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "bpx[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix)."""
    path = Path(path)
    suffix = path.suffix or ".png"
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plot_history(history: History, path: str | Path, title: str = "") -> Path:
    """Loss (left) and accuracy (right) per epoch, training and validation, saved to ``path``."""
    plt = require_matplotlib()
    has_accuracy = "accuracy" in history.metrics
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5.5, 4), squeeze=False)
    epochs = list(range(1, history.epochs + 1))
    panels = [("loss", "loss")] + ([("accuracy", "accuracy (%)")] if has_accuracy else [])
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        scale = 100.0 if key == "accuracy" else 1.0
        for prefix, style in (("", "o-"), ("val_", "s--")):
            values = history.metrics.get(prefix + key)
            if values:
                ax.plot(epochs, [scale * v for v in values], style, label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)
