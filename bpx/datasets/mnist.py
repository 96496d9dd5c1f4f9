"""MNIST: find local IDX files or download them (checksum-verified), and load them as arrays."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import sys
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .idx import DatasetError, atomic_writer, read_idx, write_idx

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the *uncompressed* files; downloads are checked against this table.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation
MINI_DIR = Path(__file__).parent / "data" / "mnist-mini"

Split = tuple[np.ndarray, np.ndarray]
PathLike = str | os.PathLike[str]


def mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    flatten: bool = True,
    dtype: Any = "float32",
    mirrors: Sequence[str] | None = None,
    cache_dir: PathLike | None = None,
) -> tuple[Split, Split]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))`` NumPy arrays.

    ``x``: shape (n, 784), or (n, 28, 28) if not ``flatten``; ``dtype`` floats scaled to
    [0, 1], or the raw uint8 pixels if ``dtype`` is None. ``y``: int64 labels, shape (n,).
    n is 60000 for train and 10000 for test.

    The four standard files (raw or ``.gz``) are taken from ``data_dir`` if given (and
    nowhere else; ``download`` is then ignored), else from ``$BPX_DATA_DIR``, else from the
    cache directory (:func:`cache_directory`), where missing files are downloaded from
    ``mirrors`` (default :data:`MIRRORS`) and checked against :data:`SHA256`, unless
    ``download`` is false. Raises ``DatasetError`` if the files cannot be found, fetched or read.
    """
    return _load(_locate(data_dir, download, mirrors, cache_dir), flatten, dtype)


def mnist_mini(*, flatten: bool = True, dtype: Any = "float32") -> tuple[Split, Split]:
    """Load the packaged MNIST subset: the first 6000 training and 1000 test examples.

    Same layout and options as :func:`mnist`; needs no network and no data directory.
    """
    return _load(_find(MINI_DIR)[0], flatten, dtype)


def cache_directory(cache_dir: PathLike | None = None) -> Path:
    """Where MNIST is cached: ``cache_dir``, else ``$BPX_CACHE_DIR/mnist``,
    else ``$XDG_CACHE_HOME/bpx/mnist``, else ``~/.cache/bpx/mnist``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("BPX_CACHE_DIR"):
        return Path(os.environ["BPX_CACHE_DIR"]) / "mnist"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "bpx" / "mnist"


def make_mini(src_dir: PathLike, out_dir: PathLike, n_train: int = 6000, n_test: int = 1000) -> None:
    """Write the first ``n_train``/``n_test`` examples of the MNIST files in ``src_dir``
    to ``out_dir`` as deterministic gzip IDX files with the standard names."""
    found, missing = _find(Path(src_dir))
    if missing:
        raise DatasetError(f"{src_dir}: missing MNIST files: {', '.join(missing)}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        n = n_train if name.startswith("train") else n_test
        array = read_idx(path)
        if len(array) < n:
            raise DatasetError(f"{path}: has {len(array)} examples, fewer than the {n} requested")
        write_idx(Path(out_dir) / f"{name}.gz", array[:n])


def _find(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Map each MNIST file name to its path in ``directory`` (raw preferred over .gz);
    also return the names not found."""
    found: dict[str, Path] = {}
    for name in FILES:
        path = next((p for p in (directory / name, directory / f"{name}.gz") if p.is_file()), None)
        if path is not None:
            found[name] = path
    return found, [name for name in FILES if name not in found]


def _locate(
    data_dir: PathLike | None, download: bool, mirrors: Sequence[str] | None, cache_dir: PathLike | None
) -> dict[str, Path]:
    if data_dir is not None:
        found, missing = _find(Path(data_dir))
        if missing:
            raise DatasetError(
                f"{data_dir}: missing MNIST files: {', '.join(missing)} (each raw or .gz); "
                "leave data_dir unset to use BPX_DATA_DIR or the download cache"
            )
        return found
    env_dir = os.environ.get("BPX_DATA_DIR")
    cache = cache_directory(cache_dir)
    searched = {"$BPX_DATA_DIR": Path(env_dir)} if env_dir else {}
    searched["cache directory"] = cache
    for directory in searched.values():
        found, missing = _find(directory)
        if not missing:
            return found
    if not download:
        places = "; ".join(f"{directory} ({label})" for label, directory in searched.items())
        unset = "" if env_dir else " (BPX_DATA_DIR is not set)"
        raise DatasetError(f"MNIST not found and download=False; searched: {places}{unset}. {_local_files_help()}")
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"{cache}: cannot create the cache directory: {e.strerror or e}") from e
    for name in missing:  # the cache directory's, searched last
        _download(name, cache, MIRRORS if mirrors is None else mirrors)
    return _find(cache)[0]


def _download(name: str, directory: Path, mirrors: Sequence[str]) -> None:
    """Fetch ``<mirror>/<name>.gz`` into ``directory`` from the first mirror that serves it
    with the right checksum."""
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:
            _fetch(url, directory / f"{name}.gz", SHA256[name])
            return
        except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError includes DatasetError
            failures.append(f"  {url}: {e}")
    tried = "\n".join(failures) or "  (no mirrors given)"
    raise DatasetError(f"could not download {name}.gz into {directory}; tried:\n{tried}\n{_local_files_help()}")


def _fetch(url: str, dest: Path, sha256: str) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, atomic_writer(dest) as f:
        length = response.headers.get("Content-Length")
        with _progress_bar(int(length) if length and length.isdigit() else None, dest.name) as bar:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        f.flush()
        digest = _gunzipped_sha256(Path(f.name))
        if digest != sha256:
            raise DatasetError(f"SHA-256 mismatch: expected {sha256}, got {digest}")


def _gunzipped_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"not a valid gzip file: {e}") from e
    return digest.hexdigest()


def _progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm bar (a context manager) when tqdm is installed and stderr is a terminal,
    else a context yielding None."""
    if not (sys.stderr and sys.stderr.isatty()):
        return contextlib.nullcontext()
    try:
        from tqdm import tqdm
    except ImportError:
        return contextlib.nullcontext()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False)


def _local_files_help() -> str:
    files = ", ".join(f"{name}.gz" for name in FILES)
    return (
        "To use local files, pass data_dir=..., set BPX_DATA_DIR, or `bpx train --data-dir DIR`; "
        f"the four files ({files}, or uncompressed) can be copied from any MNIST mirror, "
        f"e.g. {MIRRORS[0]}, or from another machine."
    )


def _load(paths: dict[str, Path], flatten: bool, dtype: Any) -> tuple[Split, Split]:
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise ValueError(f"dtype must be a floating dtype or None, got {dtype!r}")
    train = _load_split(paths["train-images-idx3-ubyte"], paths["train-labels-idx1-ubyte"], flatten, dtype)
    test = _load_split(paths["t10k-images-idx3-ubyte"], paths["t10k-labels-idx1-ubyte"], flatten, dtype)
    return train, test


def _load_split(images_path: Path, labels_path: Path, flatten: bool, dtype: Any) -> Split:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        got = f"{images.dtype} {images.shape}"
        raise DatasetError(f"{images_path}: expected uint8 images of shape (n, 28, 28), got {got}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DatasetError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_path}: labels must be in 0..9, found {labels.max()}")
    x = images.reshape(len(images), -1) if flatten else images
    if dtype is not None:
        x = x.astype(dtype)
        x /= 255
    return x, labels.astype(np.int64)
