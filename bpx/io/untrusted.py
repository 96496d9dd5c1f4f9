"""Reading files bpx did not necessarily write: strict JSON, and checks on the path itself.

:func:`strict_json` parses text as JSON that a hostile file cannot abuse: no ``NaN``/``Infinity``
(and no number that overflows to inf), no duplicate keys, and at most :data:`MAX_JSON_DEPTH`
levels of nesting (checked iteratively, so nothing later recurses). :func:`existing_file` refuses
folders, devices and FIFOs before anything opens them, and says which file was probably meant.
:class:`UntrustedFile` is the base of the format readers: one open file, errors that name it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import BpxValueError, CheckpointError, FileMissingError

MAX_JSON_DEPTH = 64


def strict_json(text: str) -> Any:
    """``json.loads`` with the restrictions above; raises :class:`BpxValueError` (a ValueError)."""
    import json

    value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                       object_pairs_hook=_unique_keys)
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BpxValueError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def existing_file(path: Path, suffix: str, what: str = "checkpoint") -> Path:
    """``path`` when it is a regular file; otherwise a :class:`CheckpointError` (a folder, a device,
    a FIFO) or :class:`FileMissingError` (nothing there; suggesting ``path + suffix`` if it exists)."""
    if path.is_file():
        return path
    if path.is_dir():
        raise CheckpointError(f"cannot load {what} {str(path)!r}: it is a folder, not a {what} file")
    if path.exists():
        raise CheckpointError(f"cannot load {what} {str(path)!r}: it is not a regular file")
    hint = ""
    if path.suffix != suffix and path.with_name(path.name + suffix).is_file():
        hint = f"; did you mean {path.name + suffix!r}?"
    raise FileMissingError(errno.ENOENT, f"no bpx {what} at this path{hint}", str(path))


class UntrustedFile:
    """A file opened once for checked reading; a subclass parses it in :meth:`_parse` (the file is
    closed if that raises). Use as a context manager. Raises ``FileNotFoundError`` for a missing
    file and, like every method, :class:`CheckpointError` naming the file for anything else."""

    def __init__(self, path: str | os.PathLike[str], what: str = "checkpoint") -> None:
        self.path, self.what = Path(path), what
        try:
            self._file: BinaryIO = open(self.path, "rb")  # closed by close()
        except FileNotFoundError:
            raise
        except OSError as err:
            raise self.error(f"cannot read it ({err.strerror or err})") from None
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self._parse()
        except OSError as err:
            self.close()
            raise self.error(f"cannot read it ({err.strerror or err})") from None
        except BaseException:
            self.close()
            raise

    def _parse(self) -> None:
        """Read and check the file's structure (its size is :attr:`size`)."""

    def error(self, problem: str) -> CheckpointError:
        """A :class:`CheckpointError` naming the file and ``problem``."""
        return CheckpointError(f"cannot load {self.what} {str(self.path)!r}: {problem}")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reject_constant(name: str) -> Any:
    raise BpxValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BpxValueError(f"the number {text[:40]} overflows a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise BpxValueError(f"the key {duplicate[:40]!r} appears twice in one object")
    return result
