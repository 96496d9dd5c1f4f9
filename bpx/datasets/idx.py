"""Reader and writer for the IDX file format used by MNIST (raw or gzip-compressed).

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the C-ordered big-endian payload.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or malformed, or cannot be downloaded."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (detected by its magic bytes).

    Returns a writable array in native byte order with the file's shape and dtype
    (uint8, int8, int16, int32, float32 or float64). Raises ``DatasetError``
    naming the file if it cannot be read or is not a well-formed IDX file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e
    if data.startswith(GZIP_MAGIC):
        data = _gunzip(data, path)
    return _parse_idx(data, path)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` (ndim >= 1, an IDX dtype) as an IDX file, atomically.

    Gzip-compresses (deterministically, mtime 0) when ``compress`` is true, or when it
    is None and ``path`` ends in ``.gz``.
    """
    path = Path(path)
    data = _idx_bytes(np.asarray(array), path)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    with atomic_writer(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """Yield a binary temp file (path: ``f.name``) next to ``path``.

    On success it is synced and moved onto ``path``; on any exception it is deleted.
    """
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False) as f:
        tmp = Path(f.name)
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
            f.close()
            tmp.chmod(0o644)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _gunzip(data: bytes, path: str | os.PathLike[str]) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: corrupt gzip stream: {e}") from e


def _parse_idx(data: bytes, path: str | os.PathLike[str]) -> np.ndarray:
    if not data:
        raise DatasetError(f"{path}: empty file")
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: not an IDX file: bad magic number {data[:4].hex()}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise DatasetError(f"{path}: IDX file with 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(f"{path}: truncated header: expected {header_size} bytes, found {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = IDX_DTYPES[code]
    expected, found = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, len(data) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "trailing bytes"
        raise DatasetError(f"{path}: {problem}: expected {expected} bytes of data for shape {shape}, found {found}")
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_dtype_code(array: np.ndarray, path: Path) -> tuple[int, np.dtype]:
    for code, dtype in IDX_DTYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return code, dtype
    raise DatasetError(f"{path}: dtype {array.dtype} cannot be stored in an IDX file")


def _idx_bytes(array: np.ndarray, path: Path) -> bytes:
    if not 1 <= array.ndim <= 255 or any(n >= 2**32 for n in array.shape):
        raise DatasetError(f"{path}: shape {array.shape} cannot be stored in an IDX file")
    code, dtype = _idx_dtype_code(array, path)
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(dtype, copy=False).tobytes()
