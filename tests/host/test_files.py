"""Atomic writes (bpx.host.files): errors name the target, never the temporary file (a full disk,
the file-size limit, a failing rename); the old file survives every failure and a process killed
mid-write; temporaries of dead processes are cleaned up; permission bits follow the umask or the
replaced file; paths are checked before any work."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bpx
from bpx.errors import CheckpointWriteError
from bpx.host import files
from bpx.host.files import HOST_TAG, atomic_write, check_writable

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX files and processes")
ROOT = Path(__file__).resolve().parents[2]


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def write(path: Path, data: bytes) -> None:
    with atomic_write(path, "test file") as f:
        f.write(data)


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120, **kwargs)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------------- errors name the target
def fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def full_disk(monkeypatch):
    """Writes go to /dev/full, which fails every flush with a real ENOSPC from the kernel."""
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        os.close(fd)
        return real(os.open("/dev/full", os.O_WRONLY), *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)


FAILURES = {
    "full-disk": (full_disk, errno.ENOSPC, "no space left on the device"),
    "fsync": (lambda mp: mp.setattr(os, "fsync", fail_with(errno.EIO)), errno.EIO, "Input/output error"),
    "quota": (lambda mp: mp.setattr(os, "fsync", fail_with(errno.EDQUOT)), errno.EDQUOT, "quota is exceeded"),
    "rename": (lambda mp: mp.setattr(os, "replace", fail_with(errno.EXDEV)), errno.EXDEV, "Invalid cross-device"),
    "create": (lambda mp: mp.setattr(os, "open", fail_with(errno.EROFS)), errno.EROFS, "Read-only file system"),
}


@POSIX
@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_write_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch, case):
    if case[0] is full_disk and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    provoke, code, reason = case
    target = tmp_path / "net.npz"
    target.write_bytes(b"old")
    provoke(monkeypatch)
    with pytest.raises(CheckpointWriteError) as info:
        write(target, b"new" * 5000)
    monkeypatch.undo()
    assert str(info.value) == f"cannot write test file {str(target)!r}: {reason}" or reason in str(info.value)
    assert str(info.value).startswith(f"cannot write test file {str(target)!r}: ")
    assert ".tmp" not in str(info.value) and info.value.errno == code
    assert isinstance(info.value, OSError)
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["net.npz"]


@POSIX
def test_a_full_disk_while_saving_a_checkpoint_names_the_checkpoint(tmp_path, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    net = bpx.Sequential(bpx.Dense(30, 30), dtype="float64", seed=0)
    target = net.save(tmp_path / "net")
    before = target.read_bytes()
    net.layers[0].weight.value[...] = 1.0
    full_disk(monkeypatch)
    with pytest.raises(CheckpointWriteError, match=rf"^cannot write checkpoint {str(target)!r}: no space left"):
        net.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == before and listing(tmp_path) == ["net.npz"]


@POSIX
def test_the_file_size_limit_is_reported_naming_the_target(tmp_path):
    """A real EFBIG: RLIMIT_FSIZE in a child process (Python ignores SIGXFSZ, so write() fails)."""
    target = tmp_path / "net.npz"
    target.write_bytes(b"old checkpoint")
    result = run_python(f"""
        import errno, resource
        import bpx
        net = bpx.Sequential(bpx.Dense(100, 200), dtype="float64", seed=0)  # 160 KB of weights
        resource.setrlimit(resource.RLIMIT_FSIZE, (32768, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            net.save({str(target)!r})
        except bpx.CheckpointWriteError as err:
            print(err.errno == errno.EFBIG, err)
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"True cannot write checkpoint {str(target)!r}: the file would exceed the "
                                     "file-size limit")
    assert target.read_bytes() == b"old checkpoint" and listing(tmp_path) == ["net.npz"]


# ---------------------------------------------------------------------- atomicity and killed writers
@POSIX
def test_a_save_killed_mid_write_leaves_the_old_file_and_the_next_save_cleans_up(tmp_path):
    target = tmp_path / "net.npz"
    target.write_bytes(b"old")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from bpx.host.files import atomic_write
        with atomic_write({str(target)!r}) as f:
            f.write(b"half of a new file")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline() == "writing\n"
        temporaries = [n for n in listing(tmp_path) if n != "net.npz"]
        assert len(temporaries) == 1 and temporaries[0].startswith(f".net.npz.{child.pid}.{HOST_TAG}")
        assert target.read_bytes() == b"old"  # mid-write, the target is untouched
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert target.read_bytes() == b"old" and len(listing(tmp_path)) == 2  # the temporary survived the kill
    write(target, b"new")
    assert target.read_bytes() == b"new" and listing(tmp_path) == ["net.npz"]


@POSIX
def test_only_temporaries_of_dead_processes_of_this_host_are_removed(tmp_path):
    target = tmp_path / "net.npz"
    dead = dead_pid()
    stale = [f".net.npz.{dead}.{HOST_TAG}0badc0de.tmp"]
    kept = [
        f".net.npz.{os.getppid()}.{HOST_TAG}12345678.tmp",  # a live process: still writing
        f".net.npz.{dead}.{'0' * 8 if HOST_TAG != '0' * 8 else '1' * 8}12345678.tmp",  # another host's
        f".other.npz.{dead}.{HOST_TAG}12345678.tmp",  # another target's
        f".net.npz.{dead}.{HOST_TAG}1234.tmp",  # not a name bpx writes
        f".net.npz.99999999999999999999.{HOST_TAG}12345678.tmp",  # no valid pid
        f".net.npz.9999999999.{HOST_TAG}12345678.tmp",  # too large for a pid_t
        "net.npz.backup",
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".net.npz.{dead}.{HOST_TAG}feedface.tmp").mkdir()  # a folder is never removed
    write(target, b"new")
    assert listing(tmp_path) == sorted([*kept, f".net.npz.{dead}.{HOST_TAG}feedface.tmp", "net.npz"])


@pytest.mark.parametrize("error", [ValueError("bad data"), KeyboardInterrupt()])
def test_an_exception_in_the_writing_code_propagates_and_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic_write(target, "plot") as f:
            f.write(b"partial")
            raise error
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["plot.png"]


def test_a_name_near_the_length_limit_can_be_written(tmp_path):
    target = tmp_path / ("n" * 245 + ".npz")
    write(target, b"data")
    write(target, b"again")  # and stale-temporary matching copes with the shortened names
    assert target.read_bytes() == b"again" and listing(tmp_path) == [target.name]


# ---------------------------------------------------------------------- permissions
@POSIX
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_current_umask_and_a_replaced_file_keeps_its_mode(tmp_path, umask):
    target = tmp_path / "net.npz"
    previous = os.umask(umask)
    try:
        write(target, b"1")
        assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
        for mode in (0o640, 0o604, 0o755):
            target.chmod(mode)
            write(target, b"2")
            assert stat.S_IMODE(target.stat().st_mode) == mode
    finally:
        os.umask(previous)


# ---------------------------------------------------------------------- paths checked first
def test_check_writable_refuses_before_any_work(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    cases = {
        tmp_path / "missing" / "net.npz": r"the folder '.*missing' does not exist",
        tmp_path / "file" / "net.npz": r"'.*file' is not a folder",
        tmp_path: "it is a folder",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointWriteError, match=rf"^cannot write checkpoint {str(path)!r}: {message}"):
            check_writable(path, "checkpoint")
    assert check_writable(str(tmp_path / "ok.npz")) == tmp_path / "ok.npz"


@POSIX
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_check_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(CheckpointWriteError, match="is not writable"):
            check_writable(folder / "net.npz", "checkpoint")
    finally:
        folder.chmod(0o700)


def test_a_missing_folder_fails_at_once_with_the_target_named(tmp_path):
    target = tmp_path / "missing" / "net.npz"
    with pytest.raises(CheckpointWriteError, match=rf"^cannot write test file {str(target)!r}: No such file"):
        write(target, b"x")
    net = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    calls = []
    net.state_dict = lambda: calls.append(1)  # type: ignore[method-assign]  # no work before the check
    with pytest.raises(CheckpointWriteError, match=r"does not exist"):
        net.save(target)
    assert calls == []


def test_temporary_names_follow_the_documented_form():
    name = files.temporary_name(Path("/x/net.npz"), pid=123)
    assert name.startswith(f".net.npz.123.{HOST_TAG}") and name.endswith(".tmp") and len(name) == len(
        ".net.npz.123.") + 16 + 4
    assert np.all([c in "0123456789abcdef" for c in name[len(".net.npz.123."):-4]])
