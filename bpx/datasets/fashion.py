"""Fashion-MNIST (Zalando Research, MIT licence): MNIST's format and layout, 10 kinds of clothing.

Found and downloaded like MNIST (see :func:`bpx.datasets.mnist`), in its own folders:
``$BPX_DATA_DIR/fashion-mnist`` and the ``fashion-mnist`` cache directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple, overload

from ..errors import DatasetError
from ._loader import PathLike, Source, Split, SplitName, load

__all__ = ["CHECKSUMS", "FASHION_MNIST_CLASSES", "MIRRORS", "fashion_mnist"]

#: Label -> class name.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the official location (HTTP only)
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",  # the project's repository
)


class Published(NamedTuple):
    """Published facts about one .gz file; a download must match all three."""

    size: int
    md5: str
    sha256: str


# Of the compressed .gz files. MD5: the zalandoresearch/fashion-mnist README. Size and SHA-256:
# TensorFlow Datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt (for the URLs of MIRRORS[0]).
CHECKSUMS = {
    "train-images-idx3-ubyte": Published(
        26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "train-labels-idx1-ubyte": Published(
        29515, "25c81989df183df01b3e8a0aad5dffbe", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "t10k-images-idx3-ubyte": Published(
        4422102, "bef4ecab320f06d8554ea6380940ec79", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "t10k-labels-idx1-ubyte": Published(
        5148, "bb300cfdad3c16e7a12a480ee83cd310", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
}


@overload
def fashion_mnist(
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
def fashion_mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    split: SplitName,
    flatten: bool = True,
    dtype: Any = "float32",
    mirrors: Sequence[str] | str | None = None,
    cache_dir: PathLike | None = None,
) -> Split: ...


def fashion_mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    split: SplitName | None = None,
    flatten: bool = True,
    dtype: Any = "float32",
    mirrors: Sequence[str] | str | None = None,
    cache_dir: PathLike | None = None,
) -> Split | tuple[Split, Split]:
    """Load Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, or only ``(x, y)`` of
    ``split="train"`` or ``"test"``; same shapes, dtypes and options as :func:`bpx.datasets.mnist`
    (n: 60000 train, 10000 test). Label ``k`` names ``FASHION_MNIST_CLASSES[k]``.

    The four files (same names as MNIST's, raw or ``.gz``) are taken from ``data_dir`` if given
    (only there), else from ``$BPX_DATA_DIR/fashion-mnist``, else from the cache directory
    (``cache_dir``, else ``$BPX_CACHE_DIR/fashion-mnist``, else ``$XDG_CACHE_HOME/bpx/fashion-mnist``,
    else ``~/.cache/bpx/fashion-mnist``), where missing files are downloaded from ``mirrors``
    (default :data:`MIRRORS`) and checked against the published size, MD5 and SHA-256 of each .gz
    (:data:`CHECKSUMS`), unless ``download`` is false. Raises ``DatasetError`` if the files cannot
    be found, fetched or read.
    """
    source = Source(
        title="Fashion-MNIST",
        folder="fashion-mnist",
        env_subfolder=True,
        mirrors=MIRRORS if mirrors is None else mirrors,
        max_download={name: published.size for name, published in CHECKSUMS.items()},
        check=_check_download,
        local_hint=(
            "pass data_dir=... or put them in $BPX_DATA_DIR/fashion-mnist; copy them from "
            "https://github.com/zalandoresearch/fashion-mnist (data/fashion) or from another machine"
        ),
    )
    return load(source, split, data_dir, download, cache_dir, flatten, dtype)


def _check_download(name: str, data: bytes) -> None:
    """Raise ``DatasetError`` unless ``data`` has the published size, MD5 and SHA-256 of ``name``.gz."""
    published = CHECKSUMS[name]
    if len(data) != published.size:
        raise DatasetError(f"size mismatch: expected {published.size} bytes, got {len(data)}")
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if md5 != published.md5:
        raise DatasetError(f"MD5 mismatch: expected {published.md5}, got {md5}")
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != published.sha256:
        raise DatasetError(f"SHA-256 mismatch: expected {published.sha256}, got {sha256}")
