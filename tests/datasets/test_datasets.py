"""Tests for bpx.datasets: IDX files (including hostile ones), MNIST and Fashion-MNIST lookup and
download (against a local HTTP server only), mnist-mini. Byte-level fuzzing: test_datasets_fuzz.py."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib
import re
import socket
import struct
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

import bpx.errors
from bpx.datasets import FASHION_MNIST_CLASSES, DatasetError, fashion_mnist, mnist, mnist_mini, read_idx, write_idx

idx_module = importlib.import_module("bpx.datasets.idx")
loader_module = importlib.import_module("bpx.datasets._loader")
mnist_module = importlib.import_module("bpx.datasets.mnist")  # `bpx.datasets.mnist` is the function
fashion_module = importlib.import_module("bpx.datasets.fashion")

FILES = loader_module.FILES
DEFAULT_MNIST_MIRRORS = mnist_module.MIRRORS  # before the autouse fixture replaces them
DEFAULT_FASHION_MIRRORS = fashion_module.MIRRORS
MiB = 1 << 20


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No user data dirs or caches, and default mirrors that cannot reach the internet."""
    monkeypatch.delenv("BPX_DATA_DIR", raising=False)
    monkeypatch.delenv("BPX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mnist_module, "MIRRORS", (closed_port_url(),))
    monkeypatch.setattr(fashion_module, "MIRRORS", (closed_port_url(),))
    monkeypatch.setattr(loader_module, "DOWNLOAD_TIMEOUT", 5.0)


def make_fake_mnist(directory: Path, n: int = 20, *, gz: bool = True, seed: int = 0) -> dict[str, str]:
    """Write MNIST-shaped IDX files with ``n`` train and ``n // 2`` test examples to ``directory``;
    return the SHA-256 of each uncompressed file."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for name in FILES:
        count = n if name.startswith("train") else n // 2
        if "images" in name:
            array = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
            array.flat[0], array.flat[1] = 0, 255
        else:
            array = (np.arange(count) % 10).astype(np.uint8)
        path = directory / (f"{name}.gz" if gz else name)
        write_idx(path, array)
        raw = path.read_bytes()
        checksums[name] = hashlib.sha256(gzip.decompress(raw) if gz else raw).hexdigest()
    return checksums


def make_fake_fashion(directory: Path, n: int = 20, seed: int = 0) -> dict[str, object]:
    """Fashion-MNIST-shaped .gz files in ``directory``; return their (size, MD5, SHA-256) table."""
    make_fake_mnist(directory, n, seed=seed)
    table = {}
    for name in FILES:
        data = (directory / f"{name}.gz").read_bytes()
        md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        table[name] = fashion_module.Published(len(data), md5, sha256)
    return table


def peak_memory(fn, *args, **kwargs) -> tuple[int, object]:
    """(peak bytes traced while calling ``fn``, its result or the exception it raised)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result = fn(*args, **kwargs)
        except Exception as e:
            result = e
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hangs up early (a refused download)
        pass


@pytest.fixture
def serve():
    """``serve(directory)`` starts a local HTTP server for ``directory`` and returns its base URL."""
    servers = []

    def start(directory: Path) -> str:
        server = QuietServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(60).reshape(3, 4, 5) - 20).astype(dtype)
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array)
    assert path.read_bytes().startswith(b"\x1f\x8b") == (suffix == ".gz")
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative and result.shape == (3, 4, 5)
    np.testing.assert_array_equal(result, array)
    result[0, 0, 0] = 1  # writable
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_idx_layout_is_big_endian(tmp_path):
    write_idx(tmp_path / "a", np.array([[1, 2, 3]], dtype="<i4"))
    assert (tmp_path / "a").read_bytes() == bytes.fromhex("00000c02 00000001 00000003 00000001 00000002 00000003")


def test_read_idx_detects_gzip_by_content(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "compressed", array, compress=True)
    write_idx(tmp_path / "plain.gz", array, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)


def test_write_idx_gz_is_deterministic(tmp_path):
    array = np.arange(1000, dtype=np.int16)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("array", [np.zeros(3, dtype=bool), np.zeros(3, dtype=np.int64), np.float32(1.0)])
def test_write_idx_rejects_unsupported_arrays(tmp_path, array):
    with pytest.raises(DatasetError, match="cannot be stored in an IDX file"):
        write_idx(tmp_path / "x", array)
    assert list(tmp_path.iterdir()) == []


def test_write_idx_failure_names_the_file(tmp_path):
    with pytest.raises(bpx.errors.CheckpointWriteError, match=re.escape(str(tmp_path / "missing" / "a.gz"))):
        write_idx(tmp_path / "missing" / "a.gz", np.zeros(3, dtype=np.uint8))


HEADER = bytes.fromhex("00000803 00000002 00000002 00000002")  # uint8, shape (2, 2, 2)
VALID_GZ = gzip.compress(HEADER + bytes(8))
CORRUPT = {
    "bad magic": (b"\x01\x00\x08\x03" + HEADER[4:] + bytes(8), "bad magic number"),
    "not idx": (b"<html>not found</html>", "bad magic number"),
    "dtype code": (b"\x00\x00\x0a\x03" + HEADER[4:] + bytes(8), "unknown IDX data type code 0x0a"),
    "0 dimensions": (b"\x00\x00\x08\x00", "IDX file with 0 dimensions"),
    "truncated header": (HEADER[:10], "truncated header: expected 16 bytes, found 10"),
    "truncated payload": (HEADER + bytes(5), "truncated: expected 8 bytes of data for shape (2, 2, 2), found 5"),
    "trailing bytes": (HEADER + bytes(9), "trailing bytes: expected 8 bytes of data for shape (2, 2, 2), found 9"),
    "empty": (b"", "empty file"),
    "truncated gzip": (VALID_GZ[:-12], "corrupt gzip stream: truncated"),
    "gzip without its trailer": (VALID_GZ[:-8], "corrupt gzip stream: truncated"),
    "garbled gzip": (b"\x1f\x8b" + bytes(30), "corrupt gzip stream"),
    "gzip crc": (VALID_GZ[:-8] + b"\x00\x00\x00\x00" + VALID_GZ[-4:], "corrupt gzip stream: Error -3"),
    "concatenated gzip members": (
        gzip.compress(HEADER) + gzip.compress(bytes(8)),
        "corrupt gzip stream: trailing data: a second gzip member (concatenated gzip files are not supported)",
    ),
    "garbage after gzip": (VALID_GZ + b"junk", "corrupt gzip stream: trailing data: bytes after the end"),
    "zero padding after gzip": (VALID_GZ + bytes(4), "corrupt gzip stream: trailing data: bytes after the end"),
    "empty gzip": (gzip.compress(b""), "empty gzip content"),
    "gzip: bad magic": (gzip.compress(b"PK\x03\x04" + bytes(30)), "bad magic number 504b0304"),
    "gzip: 0 dimensions": (gzip.compress(b"\x00\x00\x08\x00"), "IDX file with 0 dimensions"),
    "gzip: truncated header": (gzip.compress(HEADER[:10]), "truncated header: expected 16 bytes, found 10"),
    "gzip: truncated payload": (
        gzip.compress(HEADER + bytes(5)),
        "truncated: expected 8 bytes of data for shape (2, 2, 2), found 5",
    ),
    "gzip: trailing bytes": (
        gzip.compress(HEADER + bytes(9)),
        "trailing bytes: expected 8 bytes of data for shape (2, 2, 2), found more",
    ),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_read_idx_corrupt_files(tmp_path, case):
    content, message = CORRUPT[case]
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}: ") as info:
        read_idx(path)
    assert message in str(info.value)


def test_read_idx_truncated_mnist_sized_message(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(struct.pack(">4B3I", 0, 0, 8, 3, 10000, 28, 28) + bytes(1234))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: truncated: expected 7840000 bytes .* found 1234$"):
        read_idx(path)


@pytest.mark.parametrize(
    "code, dims, nbytes",
    [
        (0x08, (65536,) * 4, 2**64),  # wrapped to 0 in int64
        (0x0E, (2**32 - 1,) * 2, (2**32 - 1) ** 2 * 8),  # wrapped to a negative size
        (0x0C, (2**31, 2), 2**34),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_sizes_do_not_overflow(tmp_path, code, dims, nbytes, compress):
    header = struct.pack(f">4B{len(dims)}I", 0, 0, code, len(dims), *dims)
    path = tmp_path / "big"
    path.write_bytes(gzip.compress(header) if compress else header)
    with pytest.raises(DatasetError, match=f"declares {nbytes} bytes of data for shape .*, over max_bytes=2147483648"):
        read_idx(path)


def test_read_idx_max_bytes(tmp_path):
    assert idx_module.MAX_BYTES == 2**31
    path = tmp_path / "a.gz"
    write_idx(path, np.zeros((10, 10), dtype=np.int16))
    assert read_idx(path, max_bytes=200).shape == (10, 10)
    message = r"a\.gz: declares 200 bytes of data for shape \(10, 10\), over max_bytes=199"
    with pytest.raises(DatasetError, match=message):
        read_idx(path, max_bytes=199)


def test_read_idx_empty_array_with_huge_dimensions(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(struct.pack(">4B3I", 0, 0, 8, 3, 0, 2**32 - 1, 2**32 - 1))
    with pytest.raises(DatasetError, match=r"shape \(0, 4294967295, 4294967295\) is too large for a NumPy array"):
        read_idx(path)
    path.write_bytes(struct.pack(">4B3I", 0, 0, 0x0D, 3, 4, 0, 5))
    result = read_idx(path)
    assert result.shape == (4, 0, 5) and result.dtype == np.float32


def test_read_idx_raw_size_checked_before_allocating(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(struct.pack(">4BI", 0, 0, 8, 1, 2**31) + bytes(10))  # declares 2 GiB
    peak, error = peak_memory(read_idx, path)
    assert isinstance(error, DatasetError) and "truncated: expected 2147483648 bytes" in str(error)
    assert peak < MiB


def test_read_idx_gzip_declared_size_checked_before_decompressing(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(struct.pack(">4BI", 0, 0, 8, 1, 2**30)))  # 1 GiB in a 28-byte file
    peak, error = peak_memory(read_idx, path)
    assert isinstance(error, DatasetError)
    assert "declares 1073741824 bytes of data for shape (1073741824,), more than a gzip file of 28 bytes" in str(error)
    assert peak < MiB


def test_read_idx_gzip_bomb_stops_at_the_declared_size(tmp_path):
    """A header declaring 8 bytes followed by 64 MiB of zeros (65 KB compressed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(HEADER + bytes(8))]
    parts += [compressor.compress(bytes(MiB)) for _ in range(64)]
    path = tmp_path / "bomb.gz"
    path.write_bytes(b"".join([*parts, compressor.flush()]))
    assert path.stat().st_size < 100_000
    peak, error = peak_memory(read_idx, path)
    assert isinstance(error, DatasetError)
    assert "trailing bytes: expected 8 bytes of data for shape (2, 2, 2), found more" in str(error)
    assert peak < 4 * MiB


def test_read_idx_gzip_memory_grows_with_the_data_found(tmp_path):
    """A header declaring 60 MiB (plausible for the file's size) with 64 KiB of data."""
    data = np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8).tobytes()  # incompressible
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(struct.pack(">4BI", 0, 0, 8, 1, 60 * MiB) + data))
    peak, error = peak_memory(read_idx, path)
    assert isinstance(error, DatasetError) and "truncated: expected 62914560 bytes" in str(error)
    assert "found 65536" in str(error)
    assert peak < 4 * MiB


def test_read_idx_memory_of_a_valid_file(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    for name in ("a", "a.gz"):
        write_idx(tmp_path / name, array)
        peak, result = peak_memory(read_idx, tmp_path / name)
        np.testing.assert_array_equal(result, array)
        assert peak < 1.2 * array.nbytes + 3 * MiB


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="nope: cannot read"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DatasetError, match=f"{re.escape(str(tmp_path))}: cannot read"):
        read_idx(tmp_path)


def test_dataset_error_is_the_bpx_error():
    assert DatasetError is bpx.errors.DatasetError
    assert issubclass(DatasetError, bpx.errors.BpxError) and issubclass(DatasetError, ValueError)


# --- MNIST from local files --------------------------------------------------------------------


def test_mnist_from_data_dir(tmp_path):
    make_fake_mnist(tmp_path / "d", n=20)
    (x, y), (xt, yt) = mnist(tmp_path / "d")
    assert x.shape == (20, 784) and x.dtype == np.float32 and xt.shape == (10, 784)
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int64 and y.shape == (20,) and yt.shape == (10,)
    np.testing.assert_array_equal(y, np.arange(20) % 10)
    raw = read_idx(tmp_path / "d" / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(x, raw.reshape(20, 784) / np.float32(255))


def test_mnist_layout_and_dtype_options(tmp_path):
    make_fake_mnist(tmp_path, n=20, gz=False)
    (x, _), _ = mnist(str(tmp_path), flatten=False)
    assert x.shape == (20, 28, 28) and x.dtype == np.float32
    (x, _), _ = mnist(tmp_path, dtype=None)
    assert x.shape == (20, 784) and x.dtype == np.uint8
    (x, _), _ = mnist(tmp_path, dtype=np.float64, flatten=False)
    assert x.shape == (20, 28, 28) and x.dtype == np.float64 and x.max() == 1.0
    for dtype in ("int32", "no such dtype"):
        with pytest.raises(bpx.errors.BpxValueError, match="floating dtype"):
            mnist(tmp_path, dtype=dtype)


def test_mnist_split_reads_only_that_split(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path, n=20)
    _, (xt, yt) = mnist(tmp_path)
    read = []
    monkeypatch.setattr(loader_module, "read_idx", lambda path: read.append(path.name) or read_idx(path))
    xs, ys = mnist(tmp_path, split="test")
    np.testing.assert_array_equal(xs, xt)
    np.testing.assert_array_equal(ys, yt)
    assert read == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for name in FILES[2:]:  # the train split needs only its own files
        (tmp_path / f"{name}.gz").unlink()
    xs, _ = mnist(tmp_path, split="train", flatten=False, dtype=None)
    assert xs.shape == (20, 28, 28) and xs.dtype == np.uint8
    with pytest.raises(DatasetError, match="missing MNIST files: t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        mnist(tmp_path, split="test")
    with pytest.raises(bpx.errors.BpxValueError, match="split must be 'train', 'test' or None, got 'valid'"):
        mnist(tmp_path, split="valid")


def test_mnist_mixed_raw_and_gz(tmp_path):
    make_fake_mnist(tmp_path, n=20)
    for name in FILES[:2]:
        path = tmp_path / f"{name}.gz"
        (tmp_path / name).write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    (x, _), (xt, _) = mnist(tmp_path)
    assert x.shape == (20, 784) and xt.shape == (10, 784)


def test_search_order(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path / "data", n=10)
    make_fake_mnist(tmp_path / "env", n=12)
    make_fake_mnist(tmp_path / "cache", n=14)
    monkeypatch.setenv("BPX_DATA_DIR", str(tmp_path / "env"))
    n_train = lambda **kw: len(mnist(download=False, cache_dir=tmp_path / "cache", **kw)[0][0])  # noqa: E731
    assert n_train(data_dir=tmp_path / "data") == 10
    assert n_train() == 12
    monkeypatch.setenv("BPX_DATA_DIR", str(tmp_path / "empty"))  # incomplete: falls through to the cache
    assert n_train() == 14
    monkeypatch.delenv("BPX_DATA_DIR")
    assert n_train() == 14


@pytest.mark.parametrize(
    "env, cache",
    [
        ({"BPX_CACHE_DIR": "bpxcache"}, "bpxcache/mnist"),
        ({"XDG_CACHE_HOME": "xdgcache"}, "xdgcache/bpx/mnist"),
        ({"XDG_CACHE_HOME": ""}, "home/.cache/bpx/mnist"),
    ],
)
def test_cache_directory_from_environment(tmp_path, monkeypatch, env, cache):
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / value) if value else "")
    assert mnist_module.cache_directory() == tmp_path / cache
    assert mnist_module.cache_directory(tmp_path / "explicit") == tmp_path / "explicit"
    make_fake_mnist(tmp_path / cache, n=16)
    assert len(mnist(download=False)[0][0]) == 16


def test_data_dir_without_files_is_an_error(tmp_path):
    make_fake_mnist(tmp_path / "cache", n=14)  # must not be used as a fallback
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match="missing MNIST files: train-labels-idx1-ubyte, t10k-images") as info:
        mnist(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert str(tmp_path / "data") in str(info.value)


def test_not_found_without_download_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("BPX_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetError, match="download=False") as info:
        mnist(download=False)
    message = str(info.value)
    assert str(tmp_path / "env") in message and str(tmp_path / "xdg" / "bpx" / "mnist") in message
    assert "BPX_DATA_DIR" in message and "data_dir=" in message
    assert not (tmp_path / "xdg").exists()  # nothing created


def test_invalid_mnist_content(tmp_path):
    make_fake_mnist(tmp_path, n=20)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(labels, np.full(20, 10, dtype=np.uint8))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(labels))}: labels must be in 0..9"):
        mnist(tmp_path)
    write_idx(labels, np.zeros(19, dtype=np.uint8))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(labels))}: 19 labels for 20 images"):
        mnist(tmp_path)
    write_idx(labels, np.zeros(20, dtype=np.uint8))
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(images, np.zeros((10, 28, 27), dtype=np.uint8))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(images))}: expected uint8 images of shape"):
        mnist(tmp_path)


def test_mnist_split_with_no_images(tmp_path):
    make_fake_mnist(tmp_path, n=20)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(images, np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(images))}: holds 0 images$"):
        mnist(tmp_path)
    assert len(mnist(tmp_path, split="train")[0]) == 20


# --- MNIST download (local HTTP server only) ---------------------------------------------------


def test_download(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "server", n=20))
    cache = tmp_path / "cache"
    (x, _), (xt, yt) = mnist(mirrors=[serve(tmp_path / "server")], cache_dir=cache)
    assert x.shape == (20, 784) and xt.shape == (10, 784) and yt.dtype == np.int64
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{name}.gz" for name in FILES)
    (x2, _), _ = mnist(download=False, cache_dir=cache)
    np.testing.assert_array_equal(x, x2)


def test_download_one_split(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "server", n=20))
    cache = tmp_path / "cache"
    x, y = mnist(split="test", mirrors=serve(tmp_path / "server"), cache_dir=cache)
    assert x.shape == (10, 784) and y.shape == (10,)
    assert sorted(p.name for p in cache.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_to_default_cache_only_fetches_missing_files(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "server", n=20))
    cache = tmp_path / "xdg" / "bpx" / "mnist"
    cache.mkdir(parents=True)
    for name in FILES[:2]:
        (tmp_path / "server" / f"{name}.gz").rename(cache / f"{name}.gz")
    (x, _), (xt, _) = mnist(mirrors=serve(tmp_path / "server"))  # a single URL string is accepted
    assert x.shape == (20, 784) and xt.shape == (10, 784)
    assert len(list(cache.iterdir())) == 4


def test_download_falls_back_to_next_mirror(tmp_path, monkeypatch, serve):
    make_fake_mnist(tmp_path / "bad", n=20, seed=1)
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "good", n=20, seed=2))
    (tmp_path / "missing").mkdir()
    mirrors = [serve(tmp_path / "missing"), serve(tmp_path / "bad"), serve(tmp_path / "good")]
    (x, _), _ = mnist(mirrors=mirrors, cache_dir=tmp_path / "cache")
    expected = read_idx(tmp_path / "good" / "train-images-idx3-ubyte.gz").reshape(20, 784) / np.float32(255)
    np.testing.assert_array_equal(x, expected)
    assert len(list((tmp_path / "cache").iterdir())) == 4


def test_download_checksum_mismatch_everywhere(tmp_path, monkeypatch, serve):
    make_fake_mnist(tmp_path / "a", n=20, seed=1)
    make_fake_mnist(tmp_path / "b", n=20, seed=2, gz=False)
    for name in FILES:  # mirror b serves uncompressed content under the .gz names
        (tmp_path / "b" / name).rename(tmp_path / "b" / f"{name}.gz")
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "unused", n=20, seed=3))
    urls = [serve(tmp_path / "a"), serve(tmp_path / "b")]
    with pytest.raises(DatasetError, match=r"could not download train-images-idx3-ubyte\.gz") as info:
        mnist(mirrors=urls, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert f"{urls[0]}train-images-idx3-ubyte.gz: SHA-256 mismatch" in message
    assert f"{urls[1]}train-images-idx3-ubyte.gz: not a valid gzip file" in message
    assert list((tmp_path / "cache").iterdir()) == []  # no partial or unverified files


def test_download_size_limits(tmp_path, monkeypatch, serve):
    checksums = make_fake_mnist(tmp_path / "server", n=100)  # train images: about 78 KB compressed
    monkeypatch.setattr(mnist_module, "SHA256", checksums)
    monkeypatch.setattr(mnist_module, "SIZES", dict(mnist_module.SIZES, **{"train-images-idx3-ubyte": 70000}))
    url = serve(tmp_path / "server")
    with pytest.raises(DatasetError, match="decompresses to more than the 70000 bytes of train-images-idx3-ubyte"):
        mnist(mirrors=url, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(mnist_module, "SIZES", dict(mnist_module.SIZES, **{"train-images-idx3-ubyte": 10}))
    with pytest.raises(DatasetError, match=r"the server announces \d+ bytes, more than the 65546 expected"):
        mnist(mirrors=url, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_write_failure_names_the_file(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "server", n=20))
    target = tmp_path / "cache" / "train-images-idx3-ubyte.gz"
    target.mkdir(parents=True)  # not a file: the download cannot be moved there
    with pytest.raises(DatasetError, match=f"cannot write MNIST download {re.escape(repr(str(target)))}") as info:
        mnist(mirrors=[serve(tmp_path / "server"), closed_port_url()], cache_dir=tmp_path / "cache")
    assert "tried" not in str(info.value)  # a local failure: no other mirror is tried
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [target.name]


def test_download_offline(tmp_path):
    url = closed_port_url()
    with pytest.raises(DatasetError) as info:
        mnist(mirrors=[url], cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert f"{url}train-images-idx3-ubyte.gz: <urlopen error" in message
    for hint in ("data_dir=", "BPX_DATA_DIR", "--data-dir", "t10k-labels-idx1-ubyte.gz"):
        assert hint in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_default_mirrors():
    assert DEFAULT_MNIST_MIRRORS == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )


# --- Fashion-MNIST -----------------------------------------------------------------------------


def test_fashion_mnist_from_data_dir(tmp_path):
    make_fake_mnist(tmp_path, n=20)
    (x, y), (xt, yt) = fashion_mnist(tmp_path)
    assert x.shape == (20, 784) and x.dtype == np.float32 and xt.shape == (10, 784)
    assert 0.0 == x.min() < x.max() == 1.0 and y.dtype == yt.dtype == np.int64
    x, y = fashion_mnist(tmp_path, split="test", flatten=False, dtype=None)
    assert x.shape == (10, 28, 28) and x.dtype == np.uint8 and y.tolist() == list(range(10))
    assert [FASHION_MNIST_CLASSES[k] for k in y[[0, 9]]] == ["T-shirt/top", "Ankle boot"]


def test_fashion_mnist_search_order(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path / "env", n=10)  # MNIST files directly in $BPX_DATA_DIR: not Fashion-MNIST
    make_fake_mnist(tmp_path / "env" / "fashion-mnist", n=12)
    make_fake_mnist(tmp_path / "xdg" / "bpx" / "fashion-mnist", n=14)
    make_fake_mnist(tmp_path / "bpxcache" / "fashion-mnist", n=16)
    n_train = lambda **kw: len(fashion_mnist(download=False, split="train", **kw)[0])  # noqa: E731
    assert n_train() == 14
    monkeypatch.setenv("BPX_DATA_DIR", str(tmp_path / "env"))
    assert n_train() == 12
    assert len(mnist(download=False, split="train")[0]) == 10
    assert n_train(data_dir=tmp_path / "env") == 10
    monkeypatch.setenv("BPX_CACHE_DIR", str(tmp_path / "bpxcache"))
    monkeypatch.delenv("BPX_DATA_DIR")
    assert n_train() == 16


def test_fashion_mnist_not_found_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("BPX_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetError, match=r"^Fashion-MNIST not found and download=False") as info:
        fashion_mnist(download=False)
    message = str(info.value)
    assert f"{tmp_path / 'env' / 'fashion-mnist'} ($BPX_DATA_DIR/fashion-mnist)" in message
    assert f"{tmp_path / 'xdg' / 'bpx' / 'fashion-mnist'} (cache directory)" in message


def test_fashion_mnist_download(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(fashion_module, "CHECKSUMS", make_fake_fashion(tmp_path / "server"))
    url = serve(tmp_path / "server")
    x, _ = fashion_mnist(split="test", mirrors=[url])
    cache = tmp_path / "xdg" / "bpx" / "fashion-mnist"
    assert x.shape == (10, 784) and sorted(p.name for p in cache.iterdir()) == [f"{n}.gz" for n in FILES[2:]]
    (x, _), (xt, _) = fashion_mnist(mirrors=url)
    assert x.shape == (20, 784) and len(list(cache.iterdir())) == 4
    for name in FILES:
        assert (cache / f"{name}.gz").read_bytes() == (tmp_path / "server" / f"{name}.gz").read_bytes()
    np.testing.assert_array_equal(fashion_mnist(download=False)[1][0], xt)


@pytest.mark.parametrize("field, message", [("md5", "MD5 mismatch"), ("sha256", "SHA-256 mismatch")])
def test_fashion_mnist_checksum_mismatch(tmp_path, monkeypatch, serve, field, message):
    checksums = make_fake_fashion(tmp_path / "server")
    name = "t10k-labels-idx1-ubyte"
    checksums[name] = checksums[name]._replace(**{field: "0" * len(getattr(checksums[name], field))})
    monkeypatch.setattr(fashion_module, "CHECKSUMS", checksums)
    url = serve(tmp_path / "server")
    with pytest.raises(DatasetError, match=rf"could not download {name}\.gz") as info:
        fashion_mnist(split="test", mirrors=url, cache_dir=tmp_path / "cache")
    assert f"{url}{name}.gz: {message}: expected 0000" in str(info.value)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["t10k-images-idx3-ubyte.gz"]


def test_fashion_mnist_download_size_must_match(tmp_path, monkeypatch, serve):
    checksums = make_fake_fashion(tmp_path / "server")
    name = "t10k-labels-idx1-ubyte"
    url = serve(tmp_path / "server")
    actual = checksums[name].size
    for size, message in [(actual - 1, "the server announces"), (actual + 1, "size mismatch")]:
        monkeypatch.setattr(fashion_module, "CHECKSUMS", {**checksums, name: checksums[name]._replace(size=size)})
        with pytest.raises(DatasetError, match=message):
            fashion_mnist(split="test", mirrors=url, cache_dir=tmp_path / "cache")


def test_fashion_mnist_offline(tmp_path):
    with pytest.raises(DatasetError, match=r"^could not download t10k-images-idx3-ubyte\.gz") as info:
        fashion_mnist(split="test")
    message = str(info.value)
    assert f"{fashion_module.MIRRORS[0]}t10k-images-idx3-ubyte.gz: <urlopen error" in message
    for hint in ("data_dir=", "$BPX_DATA_DIR/fashion-mnist", "zalandoresearch", "t10k-labels-idx1-ubyte.gz"):
        assert hint in message
    assert "train-images" not in message
    assert list((tmp_path / "xdg" / "bpx" / "fashion-mnist").iterdir()) == []


def test_fashion_mnist_defaults():
    assert DEFAULT_FASHION_MIRRORS[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert len(FASHION_MNIST_CLASSES) == 10 and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert {name: c.md5 for name, c in fashion_module.CHECKSUMS.items()} == {  # the README's values
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    }


# --- mnist-mini and the real MNIST -------------------------------------------------------------


def test_mnist_mini():
    (x, y), (xt, yt) = mnist_mini()
    assert x.shape == (6000, 784) and xt.shape == (1000, 784)
    assert x.dtype == xt.dtype == np.float32 and y.dtype == yt.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0 and 0.1 < x.mean() < 0.15
    assert np.bincount(y).tolist() == [592, 671, 581, 608, 623, 514, 608, 651, 551, 601]
    assert np.bincount(yt).tolist() == [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]
    (x, _), _ = mnist_mini(flatten=False, dtype=None)
    assert x.shape == (6000, 28, 28) and x.dtype == np.uint8
    x, y = mnist_mini(split="test")
    np.testing.assert_array_equal(x, xt)
    np.testing.assert_array_equal(y, yt)


def test_make_mini_checks_sizes(tmp_path):
    make_fake_mnist(tmp_path / "src", n=20)
    mnist_module.make_mini(tmp_path / "src", tmp_path / "out", n_train=5, n_test=3)
    (x, y), (xt, _) = mnist(tmp_path / "out")
    assert x.shape == (5, 784) and xt.shape == (3, 784) and y.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(DatasetError, match="fewer than the 21 requested"):
        mnist_module.make_mini(tmp_path / "src", tmp_path / "out", n_train=21)


def test_real_mnist(shared_mnist):
    (x, y), (xt, yt) = mnist(shared_mnist, download=False)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    (xm, ym), (xtm, ytm) = mnist_mini()  # the packaged subset is the head of the real data
    np.testing.assert_array_equal(xm, x[:6000])
    np.testing.assert_array_equal(ym, y[:6000])
    np.testing.assert_array_equal(xtm, xt[:1000])
    np.testing.assert_array_equal(ytm, yt[:1000])
    xs, ys = mnist(shared_mnist, split="test")
    np.testing.assert_array_equal(xs, xt)
    np.testing.assert_array_equal(ys, yt)


def test_real_mnist_passes_the_download_check(shared_mnist):
    """The SHA-256 and size tables describe the real files (whose .gz were re-compressed)."""
    for name in FILES:
        mnist_module._check_download(name, (shared_mnist / f"{name}.gz").read_bytes())
