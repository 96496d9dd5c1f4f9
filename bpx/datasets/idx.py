"""Reader and writer for the IDX file format used by MNIST (raw or gzip-compressed).

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the C-ordered big-endian payload.

:func:`read_idx` treats every file as hostile. Sizes are Python integers (no overflow). The
payload size the header declares is checked before anything is allocated or decompressed: against
``max_bytes`` (default :data:`MAX_BYTES`), against the size of a raw file (which must match
exactly), and against the most a gzip file of its size can hold (:data:`MAX_DEFLATE_RATIO`). A
gzip file is then decompressed incrementally and reading stops as soon as its content exceeds the
declared size, so memory grows only with data that the header accounts for.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..host.files import atomic_write

GZIP_MAGIC = b"\x1f\x8b"

#: The most payload (in bytes) a file may declare unless ``read_idx(..., max_bytes=...)`` says otherwise.
MAX_BYTES = 2 * 1024**3

#: Deflate never expands a byte into more than 1032 (zlib's documented limit): a gzip file of
#: ``n`` bytes cannot decompress to more than ``1032 * n`` bytes.
MAX_DEFLATE_RATIO = 1032

CHUNK = 1 << 20  # the most bytes decompressed or read into the payload per step
COMPRESSED_CHUNK = 1 << 16  # compressed bytes read per step

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (detected by its magic bytes).

    Returns a writable array in native byte order with the file's shape and dtype (uint8, int8,
    int16, int32, float32 or float64). Raises ``DatasetError`` naming the file if it cannot be
    read, is not exactly one well-formed IDX file (a gzip file: exactly one gzip member holding
    one), or declares more than ``max_bytes`` bytes of data.
    """
    try:
        with open(path, "rb") as f:
            return _read(f, path, max_bytes)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` (ndim >= 1, an IDX dtype) as an IDX file, atomically.

    Gzip-compresses (deterministically, mtime 0) when ``compress`` is true, or when it is None and
    ``path`` ends in ``.gz``. Raises ``DatasetError`` for arrays IDX cannot hold and
    :class:`bpx.errors.CheckpointWriteError` (an ``OSError``) naming ``path`` when it cannot be written.
    """
    path = Path(path)
    data = _idx_bytes(np.asarray(array), path)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    with atomic_write(path, "IDX file") as f:
        f.write(data)


def gunzip_pieces(read: Callable[[int], bytes], what: str) -> Iterator[bytes]:
    """Decompress the one gzip member that ``read(n)`` delivers, yielding pieces of at most
    :data:`CHUNK` bytes; the caller decides how much output to take.

    Raises ``DatasetError("<what>: <problem>")`` for a corrupt or truncated stream and for anything
    after its end (a second gzip member or other trailing bytes).
    """
    d = zlib.decompressobj(wbits=31)
    while not d.eof:
        data = d.unconsumed_tail or read(COMPRESSED_CHUNK)
        try:
            piece = d.decompress(data, CHUNK)
        except zlib.error as e:
            raise DatasetError(f"{what}: {e}") from None
        if piece:
            yield piece
        elif not data:
            raise DatasetError(f"{what}: truncated: the file ends inside the compressed data")
    rest = d.unused_data[:2]
    rest += read(2 - len(rest))
    if rest:
        extra = "a second gzip member (concatenated gzip files are not supported)" if rest == GZIP_MAGIC else "bytes"
        raise DatasetError(f"{what}: trailing data: {extra} after the end of the compressed data")


class _Pieces:
    """``read(n)`` over an iterator of byte strings: up to ``n`` bytes, fewer only at its end."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._rest = memoryview(b"")

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if not self._rest:
                self._rest = memoryview(next(self._pieces, b""))
                if not self._rest:
                    break
            take = n - len(out)
            out += self._rest[:take]
            self._rest = self._rest[take:]
        return bytes(out)


def _read(f: io.BufferedReader, path: str | os.PathLike[str], max_bytes: int) -> np.ndarray:
    info = os.fstat(f.fileno())
    file_size = info.st_size if stat.S_ISREG(info.st_mode) else None
    compressed = f.peek(2)[:2] == GZIP_MAGIC
    read = _Pieces(gunzip_pieces(f.read, f"{path}: corrupt gzip stream")).read if compressed else f.read
    shape, dtype, header_size = _read_header(read, path, compressed)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise DatasetError(f"{path}: declares {nbytes} bytes of data for shape {shape}, over max_bytes={max_bytes}")
    if math.prod(d or 1 for d in shape) * dtype.itemsize > np.iinfo(np.intp).max:
        raise DatasetError(f"{path}: shape {shape} is too large for a NumPy array")
    verified = file_size is not None and not compressed  # a raw file's payload is the rest of the file
    if verified and file_size - header_size != nbytes:
        raise _size_error(path, shape, nbytes, file_size - header_size)
    if compressed and file_size is not None and header_size + nbytes > MAX_DEFLATE_RATIO * file_size:
        raise DatasetError(
            f"{path}: declares {nbytes} bytes of data for shape {shape}, more than a gzip file of {file_size} "
            f"bytes can hold (at most {MAX_DEFLATE_RATIO}:1)"
        )
    if verified:  # read straight into the final buffer
        payload = bytearray(nbytes)
        got = 0
        with memoryview(payload) as view:
            while got < nbytes and (count := f.readinto(view[got:])):
                got += count
    else:  # grows only with the data actually there, up to the declared size
        payload = bytearray()
        while len(payload) < nbytes and (piece := read(min(CHUNK, nbytes - len(payload)))):
            payload += piece
        got = len(payload)
    if got < nbytes:
        raise _size_error(path, shape, nbytes, got)
    if read(1):
        raise DatasetError(f"{path}: trailing bytes: expected {nbytes} bytes of data for shape {shape}, found more")
    array = np.frombuffer(payload, dtype=dtype)
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array.reshape(shape)


def _read_header(
    read: Callable[[int], bytes], path: str | os.PathLike[str], compressed: bool
) -> tuple[tuple[int, ...], np.dtype, int]:
    """Parse the magic number and dimensions; return (shape, big-endian dtype, header size)."""
    magic = read(4)
    if not magic:
        raise DatasetError(f"{path}: {'empty gzip content' if compressed else 'empty file'}")
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: not an IDX file: bad magic number {magic.hex()}")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise DatasetError(f"{path}: IDX file with 0 dimensions")
    dims = read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{path}: truncated header: expected {4 + 4 * ndim} bytes, found {4 + len(dims)}")
    return struct.unpack(f">{ndim}I", dims), IDX_DTYPES[code], 4 + 4 * ndim


def _size_error(path: str | os.PathLike[str], shape: tuple[int, ...], expected: int, found: int) -> DatasetError:
    problem = "truncated" if found < expected else "trailing bytes"
    return DatasetError(f"{path}: {problem}: expected {expected} bytes of data for shape {shape}, found {found}")


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
