"""What MNIST and Fashion-MNIST share: the four IDX files, where they are looked for, how missing
ones are downloaded (size-capped, verified, written atomically) and how a split becomes arrays."""

from __future__ import annotations

import contextlib
import http.client
import os
import sys
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import BpxValueError, CheckpointWriteError, DatasetError
from ..host.files import atomic_write
from .idx import read_idx

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SPLITS = {"train": FILES[:2], "test": FILES[2:]}  # (images, labels) of each split

DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation

Split = tuple[np.ndarray, np.ndarray]
SplitName = Literal["train", "test"]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Source:
    """One MNIST-like dataset: how its files are found, fetched and checked."""

    title: str  # in messages: "MNIST"
    folder: str  # its cache folder's name, also its folder in $BPX_DATA_DIR when env_subfolder
    env_subfolder: bool  # look in $BPX_DATA_DIR/<folder>, else in $BPX_DATA_DIR itself
    mirrors: Sequence[str] | str  # base URLs of <name>.gz, tried in order
    max_download: Mapping[str, int]  # file name -> the most bytes its .gz may have
    check: Callable[[str, bytes], None]  # (name, .gz content): raises DatasetError if it is not the file
    local_hint: str  # how to point bpx at local files, and where to get them


def cache_directory(cache_dir: PathLike | None = None, dataset: str = "mnist") -> Path:
    """Where ``dataset``'s files are cached: ``cache_dir``, else ``$BPX_CACHE_DIR/<dataset>``,
    else ``$XDG_CACHE_HOME/bpx/<dataset>``, else ``~/.cache/bpx/<dataset>``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("BPX_CACHE_DIR"):
        return Path(os.environ["BPX_CACHE_DIR"]) / dataset
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "bpx" / dataset


def load(
    source: Source,
    split: SplitName | None,
    data_dir: PathLike | None,
    download: bool,
    cache_dir: PathLike | None,
    flatten: bool,
    dtype: Any,
) -> Split | tuple[Split, Split]:
    """Find (or download) the files ``split`` needs and load them; see :func:`bpx.datasets.mnist`."""
    names = needed_files(split, dtype)
    return load_files(locate(source, names, data_dir, download, cache_dir), split, flatten, dtype)


def needed_files(split: SplitName | None, dtype: Any) -> tuple[str, ...]:
    """Check the ``split`` and ``dtype`` arguments; return the names of the files ``split`` needs."""
    if split not in (None, "train", "test"):
        raise BpxValueError(f"split must be 'train', 'test' or None, got {split!r}")
    try:
        kind = None if dtype is None else np.dtype(dtype).kind
    except TypeError:
        kind = "?"
    if kind not in (None, "f"):
        raise BpxValueError(f"dtype must be a floating dtype or None, got {dtype!r}")
    return FILES if split is None else SPLITS[split]


def load_files(
    paths: Mapping[str, Path], split: SplitName | None, flatten: bool, dtype: Any
) -> Split | tuple[Split, Split]:
    """Load ``split`` (None: ``(train, test)``) from ``paths`` (file name -> path)."""

    def one(name: str) -> Split:
        images, labels = SPLITS[name]
        return _load_split(paths[images], paths[labels], flatten, dtype)

    return one(split) if split is not None else (one("train"), one("test"))


def find(directory: Path, names: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Map each of ``names`` to its path in ``directory`` (raw preferred over .gz); also return
    the names not found."""
    found: dict[str, Path] = {}
    for name in names:
        path = next((p for p in (directory / name, directory / f"{name}.gz") if p.is_file()), None)
        if path is not None:
            found[name] = path
    return found, [name for name in names if name not in found]


def locate(
    source: Source, names: Sequence[str], data_dir: PathLike | None, download: bool, cache_dir: PathLike | None
) -> dict[str, Path]:
    """Paths of ``names``: from ``data_dir`` only if given, else from the first of ``$BPX_DATA_DIR``
    and the cache directory that holds all of them, else downloaded into the cache directory."""
    if data_dir is not None:
        found, missing = find(Path(data_dir), names)
        if missing:
            raise DatasetError(
                f"{data_dir}: missing {source.title} files: {', '.join(missing)} (each raw or .gz); "
                "leave data_dir unset to use BPX_DATA_DIR or the download cache"
            )
        return found
    env_dir = os.environ.get("BPX_DATA_DIR")
    cache = cache_directory(cache_dir, source.folder)
    searched: dict[str, Path] = {}
    if env_dir:
        label = f"$BPX_DATA_DIR/{source.folder}" if source.env_subfolder else "$BPX_DATA_DIR"
        searched[label] = Path(env_dir) / source.folder if source.env_subfolder else Path(env_dir)
    searched["cache directory"] = cache
    for directory in searched.values():
        found, missing = find(directory, names)
        if not missing:
            return found
    if not download:
        places = "; ".join(f"{directory} ({label})" for label, directory in searched.items())
        unset = "" if env_dir else " (BPX_DATA_DIR is not set)"
        raise DatasetError(
            f"{source.title} not found and download=False; searched: {places}{unset}. "
            + _local_files_help(source, names)
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"{cache}: cannot create the cache directory: {e.strerror or e}") from e
    for name in missing:  # the cache directory's, searched last
        _download(source, name, names, cache)
    return find(cache, names)[0]


def _download(source: Source, name: str, names: Sequence[str], directory: Path) -> None:
    """Fetch ``<mirror>/<name>.gz`` from the first mirror that serves it right and write it to
    ``directory`` atomically."""
    mirrors = [source.mirrors] if isinstance(source.mirrors, str) else source.mirrors
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:
            data = _fetch(url, source.max_download[name])
            source.check(name, data)
        except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError includes DatasetError
            failures.append(f"  {url}: {e}")
            continue
        try:
            with atomic_write(directory / f"{name}.gz", f"{source.title} download") as f:
                f.write(data)
        except CheckpointWriteError as e:
            raise DatasetError(str(e)) from e
        return
    tried = "\n".join(failures) or "  (no mirrors given)"
    raise DatasetError(
        f"could not download {name}.gz into {directory}; tried:\n{tried}\n{_local_files_help(source, names)}"
    )


def _fetch(url: str, limit: int) -> bytes:
    """The content at ``url``; refused as soon as it is longer than ``limit`` bytes."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > limit:
            raise DatasetError(f"the server announces {total} bytes, more than the {limit} expected")
        data = bytearray()
        with _progress_bar(total, url.rsplit("/", 1)[-1]) as bar:
            while chunk := response.read(1 << 16):
                data += chunk
                if len(data) > limit:
                    raise DatasetError(f"longer than the {limit} bytes expected")
                if bar is not None:
                    bar.update(len(chunk))
    return bytes(data)


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


def _local_files_help(source: Source, names: Sequence[str]) -> str:
    files = ", ".join(f"{name}.gz" for name in names)
    return f"To use local files ({files}, or uncompressed), {source.local_hint}."


def _load_split(images_path: Path, labels_path: Path, flatten: bool, dtype: Any) -> Split:
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        got = f"{images.dtype} {images.shape}"
        raise DatasetError(f"{images_path}: expected uint8 images of shape (n, 28, 28), got {got}")
    if len(images) == 0:
        raise DatasetError(f"{images_path}: holds 0 images")
    labels = read_idx(labels_path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DatasetError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    if labels.max() > 9:
        raise DatasetError(f"{labels_path}: labels must be in 0..9, found {labels.max()}")
    x = images.reshape(len(images), -1) if flatten else images
    if dtype is not None:
        x = x.astype(dtype)
        x /= 255
    return x, labels.astype(np.int64)
