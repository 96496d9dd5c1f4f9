"""Atomic file writes: a complete new file or the old one, never a torn file.

:func:`atomic_write` writes into a temporary file beside the target, named
``.<name>.<pid>.<hex>.tmp`` (the first 8 hex digits tag the host), flushes and fsyncs it, gives it
the target's permission bits (an existing file's; else those of any new file, ``0o666`` less the
umask, never the ``0o600`` of temporary files) and renames it over the target. Every failure — a
missing folder, a full disk, the file-size limit, an exception in the caller's writing code —
removes the temporary file, and write errors are reported naming the *target* path. Temporary
files left behind by a process of this host that was killed while writing are removed by the
next write to the same target (on POSIX systems, where a process can be looked up safely).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import CheckpointWriteError

#: Tags this host's temporary files, so that a shared folder's files of other hosts are left alone.
HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
#: The longest part of the target's name that temporary names repeat (names are limited to 255 bytes).
MAX_STEM_BYTES = 200
_TEMPORARY = re.compile(r"(?P<pid>[0-9]{1,10})\.(?P<tag>[0-9a-f]{8})[0-9a-f]{8}\.tmp")


def check_writable(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Raise :class:`CheckpointWriteError` now, before any work, when ``path`` cannot be written:
    its folder is missing, not a folder or not writable, or ``path`` is a folder. Returns ``path``
    as a Path."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise CheckpointWriteError(f"cannot write {what} {str(path)!r}: it is a folder")
    if not folder.exists():
        raise CheckpointWriteError(f"cannot write {what} {str(path)!r}: the folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise CheckpointWriteError(f"cannot write {what} {str(path)!r}: {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointWriteError(f"cannot write {what} {str(path)!r}: the folder {str(folder)!r} is not writable")
    return path


def temporary_name(path: Path, pid: int | None = None) -> str:
    """The name of a new temporary file for ``path``: ``.<name>.<pid>.<host tag><random>.tmp``."""
    return f"{_stem(path)}{os.getpid() if pid is None else pid}.{HOST_TAG}{secrets.token_hex(4)}.tmp"


def _stem(path: Path) -> str:
    name = path.name
    while len(os.fsencode(name)) > MAX_STEM_BYTES:
        name = name[:-1]
    return f".{name}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or no valid pid: leave its file alone
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete this host's temporary files for ``path`` whose writing process no longer exists."""
    if os.name != "posix":  # os.kill(pid, 0) is no lookup on Windows
        return
    stem = _stem(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name, len(stem)) if entry.name.startswith(stem) else None
        if match is None or match["tag"] != HOST_TAG:
            continue
        pid = int(match["pid"])
        with contextlib.suppress(OSError):
            if pid != os.getpid() and entry.is_file(follow_symlinks=False) and not _pid_alive(pid):
                os.unlink(entry.path)


def _write_error(path: Path, what: str, err: OSError) -> CheckpointWriteError:
    """A :class:`CheckpointWriteError` naming ``path`` (not the temporary file), with ``err``'s errno."""
    if err.errno == errno.ENOSPC:
        reason = "no space left on the device"
    elif err.errno == errno.EFBIG:
        reason = "the file would exceed the file-size limit"
    elif err.errno == errno.EDQUOT:
        reason = "the disk quota is exceeded"
    else:
        reason = err.strerror or str(err)
    error = CheckpointWriteError(f"cannot write {what} {str(path)!r}: {reason}")
    error.errno = err.errno
    return error


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], what: str = "file") -> Iterator[BinaryIO]:
    """Yield a binary file to write; on normal exit it replaces ``path`` atomically.

    ``what`` names the kind of file in error messages (``"checkpoint"``, ``"plot"``, ...). An
    ``OSError`` while creating, writing (inside the block), syncing or renaming the file is raised
    as :class:`bpx.errors.CheckpointWriteError` (an ``OSError`` with the same ``errno``) naming
    ``path``; other exceptions propagate unchanged. In every case the temporary file is removed.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = path.parent / temporary_name(path)
    try:  # 0o666: the kernel applies the umask (or the folder's default ACL), as for any new file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as err:
        raise _write_error(path, what, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):  # a new file keeps the mode it was created with
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, CheckpointWriteError):
            raise _write_error(path, what, err) from None
        raise
    with contextlib.suppress(OSError):  # make the rename durable; folders cannot be opened on Windows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
