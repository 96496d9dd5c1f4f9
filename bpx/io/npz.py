"""A strict reader of ``.npz`` archives for untrusted files: nothing is allocated before it is checked.

``numpy.load`` trusts what a file declares: a 3.6 KB archive can make it allocate gigabytes, and
a crafted ``.npy`` header can drive its literal parser into deep recursion (a ``MemoryError``).
:class:`NpzReader` opens the file once and reads the zip directory with :mod:`zipfile`; it
refuses encrypted members, compression methods other than stored and deflated, member names
that are not ``<name>.npy`` or appear twice; it parses each ``.npy`` header with a strict
grammar (a dtype from an allow-list, C order, a shape of at most 32 non-negative dimensions)
instead of a literal parser, checks that the declared array fits the member's declared size,
the caller's limit and the archive's budget (``expansion`` times the file size, for all arrays
together), and only then allocates and reads the bytes, in chunks, CRC-checked by
:mod:`zipfile`. Every problem is a :class:`bpx.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import math
import os
import re
import struct
import zipfile
import zlib

import numpy as np

from ..errors import CheckpointError
from .untrusted import UntrustedFile

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip
#: The longest ``.npy`` header read (numpy writes about 128 bytes; 32 dimensions need under 800).
MAX_NPY_HEADER = 4096
MAX_DIMS = 32
#: Bytes any archive may declare beyond ``expansion`` times its size (room for tiny files).
SLACK = 1 << 16
CHUNK = 1 << 20
#: dtypes an array member may have: little- or big-endian float32/float64, and bytes.
ALLOWED_DTYPES = frozenset({"<f4", ">f4", "<f8", ">f8", "|u1"})
FLOAT_DESCRS = frozenset({"<f4", ">f4", "<f8", ">f8"})
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError, OSError,
                EOFError, zlib.error, struct.error, UnicodeDecodeError, KeyError, OverflowError, IndexError)
#: The header numpy writes: ``{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`` padded
#: with spaces and a newline. A 1-D shape is ``(n,)``, a 0-D one ``()``.
_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[^'\\]{1,16})', 'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>|[0-9]{1,18},|[0-9]{1,18}(?:, [0-9]{1,18})+)\), \} *\n?")


class NpzReader(UntrustedFile):
    """The members of an ``.npz`` file, read on demand with every declared size checked first.

    Use as a context manager. ``names`` lists the array names (``.npy`` suffix removed), ``size``
    is the file's size and ``budget`` the bytes of array data still allowed
    (``expansion × size + SLACK`` at first). Raises ``FileNotFoundError`` for a missing file and
    :class:`CheckpointError` for anything that is not a readable ``.npz`` archive.
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "checkpoint", *, expansion: int = 1100) -> None:
        self._zip: zipfile.ZipFile | None = None
        self._expansion = expansion
        super().__init__(path, what)

    def _parse(self) -> None:
        magic = self._file.read(len(NPY_MAGIC))
        self._file.seek(0)
        if magic == NPY_MAGIC:
            raise self.error("it is a single NumPy .npy array, not an .npz archive")
        if not magic.startswith(ZIP_MAGIC):
            raise self.error(f"not an .npz archive (it starts with {magic!r})")
        self.budget = self._expansion * max(self.size, 1) + SLACK
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except _READ_ERRORS as err:
            raise self.error(f"truncated, corrupt or unsupported .npz archive ({type(err).__name__}: {err})") from None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise self.error(f"member {name!r} is not a .npy array")
            key = name[:-4]
            if key in self._infos:
                raise self.error(f"member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise self.error(f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(f"member {name!r} uses compression method {info.compress_type}; "
                                 "only stored and deflated members are read")
            self._infos[key] = info
        self.names = list(self._infos)

    def member_size(self, name: str) -> int:
        """The uncompressed size that the zip directory declares for member ``name`` (unchecked)."""
        return self._infos[name].file_size

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        super().close()

    def array(self, name: str, *, dtypes: frozenset[str] | set[str] = FLOAT_DESCRS,
              shape: tuple[int, ...] | None = None, ndim: int | None = None,
              max_bytes: int | None = None) -> np.ndarray:
        """Member ``name`` as a writable, native-byte-order array, after checking its header: a dtype
        in ``dtypes``, ``shape`` (or ``ndim``) when given, and at most ``max_bytes`` of data within
        what is left of :attr:`budget` (which it uses up)."""
        info = self._infos.get(name)
        if info is None:
            raise self.error(f"array {name!r} is missing")
        try:
            with self._zip.open(info) as member:  # type: ignore[union-attr]
                prefix = member.read(10)
                if len(prefix) < 10 or not prefix.startswith(NPY_MAGIC):
                    raise self.error(f"array {name!r} is not a .npy array (bad magic)")
                major, minor = prefix[6], prefix[7]
                if minor != 0 or major not in (1, 2, 3):
                    raise self.error(f"array {name!r} has an unknown .npy format version {major}.{minor}")
                if major == 1:
                    header_len, start = struct.unpack("<H", prefix[8:10])[0], 10
                else:
                    header_len, start = struct.unpack("<I", prefix[8:10] + member.read(2))[0], 12
                if header_len > MAX_NPY_HEADER:
                    raise self.error(f"array {name!r} declares a {header_len}-byte .npy header")
                raw = member.read(header_len)
                descr, found = self._parse_header(name, raw, header_len)
                if descr not in dtypes:
                    raise self.error(f"array {name!r} has dtype {descr}; expected one of {sorted(dtypes)}")
                if shape is not None and found != tuple(shape):
                    raise self.error(f"array {name!r} has shape {found} but {tuple(shape)} is expected")
                if ndim is not None and len(found) != ndim:
                    raise self.error(f"array {name!r} has shape {found}; a {ndim}-D array is expected")
                nbytes = math.prod(found) * int(descr[2:])
                limit = self.budget if max_bytes is None else min(max_bytes, self.budget)
                if nbytes > limit:
                    raise self.error(f"array {name!r} declares {nbytes} bytes of data (shape {found}), more than "
                                     f"the {limit} a file of {self.size} bytes may hold here")
                if info.file_size != start + header_len + nbytes:
                    raise self.error(f"array {name!r} declares {nbytes} bytes of data but its member holds "
                                     f"{info.file_size - start - header_len}")
                self.budget -= nbytes
                data = np.empty(nbytes, dtype=np.uint8)
                view, done = memoryview(data), 0
                while done < nbytes:
                    chunk = member.read(min(CHUNK, nbytes - done))
                    if not chunk:
                        break
                    view[done:done + len(chunk)] = chunk
                    done += len(chunk)
                if done != nbytes:
                    raise self.error(f"array {name!r} is truncated: {done} of {nbytes} bytes")
                if member.read(1):  # pragma: no cover - zipfile stops at the declared size
                    raise self.error(f"array {name!r} holds more than the {nbytes} bytes it declares")
        except CheckpointError:
            raise
        except _READ_ERRORS as err:
            raise self.error(f"array {name!r} cannot be read ({type(err).__name__}: {err})") from None
        try:
            array = data.view(np.dtype(descr)).reshape(found)
        except ValueError as err:  # e.g. (0, 10**18, 10**18): empty, yet too big for numpy
            raise self.error(f"array {name!r} has an impossible shape {found} ({err})") from None
        if not array.dtype.isnative:
            array = array.byteswap(inplace=True).view(array.dtype.newbyteorder("="))
        return array

    def _parse_header(self, name: str, raw: bytes, length: int) -> tuple[str, tuple[int, ...]]:
        """``(descr, shape)`` from a ``.npy`` header, matched against numpy's exact layout (never
        evaluated: numpy's own reader runs a literal parser on it)."""
        if len(raw) != length:
            raise self.error(f"array {name!r} has a truncated .npy header")
        text = raw.decode("latin1")  # every byte decodes; the grammar admits ASCII only
        match = _HEADER.fullmatch(text)
        if match is None:
            raise self.error(f"array {name!r} has a malformed .npy header {text[:80]!r}")
        if match["fortran"] == "True":
            raise self.error(f"array {name!r} is stored in Fortran order")
        dims = tuple(int(d) for d in match["shape"].replace(",", " ").split())
        if len(dims) > MAX_DIMS:
            raise self.error(f"array {name!r} has {len(dims)} dimensions (at most {MAX_DIMS})")
        return match["descr"], dims
