"""Datasets (host-side, NumPy): MNIST and Fashion-MNIST loading and download, a packaged MNIST
subset, IDX files."""

from ..errors import DatasetError
from .fashion import FASHION_MNIST_CLASSES, fashion_mnist
from .idx import MAX_BYTES, read_idx, write_idx
from .mnist import mnist, mnist_mini

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MAX_BYTES",
    "DatasetError",
    "fashion_mnist",
    "mnist",
    "mnist_mini",
    "read_idx",
    "write_idx",
]
