"""Datasets (host-side, NumPy): MNIST loading and download, a packaged MNIST subset, IDX files."""

from .idx import DatasetError, read_idx, write_idx
from .mnist import mnist, mnist_mini

__all__ = ["DatasetError", "mnist", "mnist_mini", "read_idx", "write_idx"]
