"""MNIST: find local IDX files or download them (checksum-verified), and load them as arrays."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

from ..errors import DatasetError
from ._loader import FILES, PathLike, Source, Split, SplitName, cache_directory, find, load, load_files, needed_files
from .idx import gunzip_pieces, read_idx, write_idx

__all__ = ["FILES", "MIRRORS", "SHA256", "SIZES", "cache_directory", "make_mini", "mnist", "mnist_mini"]

# SHA-256 of the *uncompressed* files; downloads are checked against this table (mirrors may
# re-compress, so the .gz files themselves can differ).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Sizes of the uncompressed files (header + n x 28 x 28 images, header + n labels).
SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 784,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

MINI_DIR = Path(__file__).parent / "data" / "mnist-mini"


@overload
def mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    split: None = None,
    flatten: bool = True,
    dtype: Any = "float32",
    mirrors: Sequence[str] | str | None = None,
    cache_dir: PathLike | None = None,
) -> tuple[Split, Split]: ...


@overload
def mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    split: SplitName,
    flatten: bool = True,
    dtype: Any = "float32",
    mirrors: Sequence[str] | str | None = None,
    cache_dir: PathLike | None = None,
) -> Split: ...


def mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    split: SplitName | None = None,
    flatten: bool = True,
    dtype: Any = "float32",
    mirrors: Sequence[str] | str | None = None,
    cache_dir: PathLike | None = None,
) -> Split | tuple[Split, Split]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))`` NumPy arrays, or only
    ``(x, y)`` of ``split="train"`` or ``"test"`` (the other split's files are not needed or read).

    ``x``: shape (n, 784), or (n, 28, 28) if not ``flatten``; ``dtype`` floats scaled to
    [0, 1], or the raw uint8 pixels if ``dtype`` is None. ``y``: int64 labels in 0..9, shape (n,).
    n is 60000 for train and 10000 for test.

    The standard files (raw or ``.gz``) are taken from ``data_dir`` if given (and nowhere else;
    ``download`` is then ignored), else from ``$BPX_DATA_DIR``, else from the cache directory
    (:func:`cache_directory`), where missing files are downloaded from ``mirrors`` (a URL or a
    list; default :data:`MIRRORS`) and checked against :data:`SHA256` of their uncompressed
    content, unless ``download`` is false. Raises ``DatasetError`` if the files cannot be found,
    fetched or read.
    """
    source = Source(
        title="MNIST",
        folder="mnist",
        env_subfolder=False,
        mirrors=MIRRORS if mirrors is None else mirrors,
        max_download={name: size + size // 64 + 65536 for name, size in SIZES.items()},  # any gzip of it fits
        check=_check_download,
        local_hint=(
            "pass data_dir=..., set BPX_DATA_DIR, or `bpx train --data-dir DIR`; copy them from any MNIST "
            f"mirror, e.g. {MIRRORS[0]}, or from another machine"
        ),
    )
    return load(source, split, data_dir, download, cache_dir, flatten, dtype)


@overload
def mnist_mini(*, split: None = None, flatten: bool = True, dtype: Any = "float32") -> tuple[Split, Split]: ...


@overload
def mnist_mini(*, split: SplitName, flatten: bool = True, dtype: Any = "float32") -> Split: ...


def mnist_mini(
    *, split: SplitName | None = None, flatten: bool = True, dtype: Any = "float32"
) -> Split | tuple[Split, Split]:
    """Load the packaged MNIST subset: the first 6000 training and 1000 test examples.

    Same layout and options (``split``, ``flatten``, ``dtype``) as :func:`mnist`; needs no
    network and no data directory.
    """
    found, missing = find(MINI_DIR, needed_files(split, dtype))
    if missing:
        raise DatasetError(f"{MINI_DIR}: the packaged mnist-mini files are missing: {', '.join(missing)}")
    return load_files(found, split, flatten, dtype)


def make_mini(src_dir: PathLike, out_dir: PathLike, n_train: int = 6000, n_test: int = 1000) -> None:
    """Write the first ``n_train``/``n_test`` examples of the MNIST files in ``src_dir``
    to ``out_dir`` as deterministic gzip IDX files with the standard names."""
    found, missing = find(Path(src_dir), FILES)
    if missing:
        raise DatasetError(f"{src_dir}: missing MNIST files: {', '.join(missing)}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        n = n_train if name.startswith("train") else n_test
        array = read_idx(path)
        if len(array) < n:
            raise DatasetError(f"{path}: has {len(array)} examples, fewer than the {n} requested")
        write_idx(Path(out_dir) / f"{name}.gz", array[:n])


def _check_download(name: str, data: bytes) -> None:
    """Raise ``DatasetError`` unless ``data`` is a gzip file of the MNIST file ``name``."""
    digest, size = hashlib.sha256(), 0
    for piece in gunzip_pieces(io.BytesIO(data).read, "not a valid gzip file"):
        size += len(piece)
        if size > SIZES[name]:
            raise DatasetError(f"decompresses to more than the {SIZES[name]} bytes of {name}")
        digest.update(piece)
    if digest.hexdigest() != SHA256[name]:
        raise DatasetError(f"SHA-256 mismatch: expected {SHA256[name]}, got {digest.hexdigest()}")
