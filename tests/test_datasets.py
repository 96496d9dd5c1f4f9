"""Tests for bpx.datasets: IDX files, MNIST lookup/download (against a local HTTP server), mnist-mini."""

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
from pathlib import Path

import numpy as np
import pytest

from bpx.datasets import DatasetError, mnist, mnist_mini, read_idx, write_idx

mnist_module = importlib.import_module("bpx.datasets.mnist")  # `bpx.datasets.mnist` is the function

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
FILES = mnist_module.FILES
DEFAULT_MIRRORS = mnist_module.MIRRORS  # before the autouse fixture replaces them


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
    monkeypatch.setattr(mnist_module, "DOWNLOAD_TIMEOUT", 5.0)


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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def serve():
    """``serve(directory)`` starts a local HTTP server for ``directory`` and returns its base URL."""
    servers = []

    def start(directory: Path) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory))
        )
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
    assert result.dtype == np.dtype(dtype) and result.shape == (3, 4, 5)
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


HEADER = bytes.fromhex("00000803 00000002 00000002 00000002")  # uint8, shape (2, 2, 2)
CORRUPT = {
    "bad magic": (b"\x01\x00\x08\x03" + HEADER[4:] + bytes(8), "bad magic number"),
    "not idx": (b"<html>not found</html>", "bad magic number"),
    "dtype code": (b"\x00\x00\x0a\x03" + HEADER[4:] + bytes(8), "unknown IDX data type code 0x0a"),
    "truncated header": (HEADER[:10], "truncated header"),
    "truncated payload": (HEADER + bytes(5), "truncated: expected 8 bytes of data for shape (2, 2, 2), found 5"),
    "trailing bytes": (HEADER + bytes(9), "trailing bytes: expected 8 bytes of data for shape (2, 2, 2), found 9"),
    "truncated gzip": (gzip.compress(HEADER + bytes(8))[:-12], "corrupt gzip stream"),
    "garbled gzip": (b"\x1f\x8b" + bytes(30), "corrupt gzip stream"),
    "empty": (b"", "empty file"),
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


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="nope: cannot read"):
        read_idx(tmp_path / "nope")


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)


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
    with pytest.raises(ValueError, match="floating dtype"):
        mnist(tmp_path, dtype="int32")


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


# --- MNIST download (local HTTP server only) ---------------------------------------------------


def test_download(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(mnist_module, "SHA256", make_fake_mnist(tmp_path / "server", n=20))
    cache = tmp_path / "cache"
    (x, _), (xt, yt) = mnist(mirrors=[serve(tmp_path / "server")], cache_dir=cache)
    assert x.shape == (20, 784) and xt.shape == (10, 784) and yt.dtype == np.int64
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{name}.gz" for name in FILES)
    (x2, _), _ = mnist(download=False, cache_dir=cache)
    np.testing.assert_array_equal(x, x2)


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
    assert DEFAULT_MIRRORS == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )


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


def test_make_mini_checks_sizes(tmp_path):
    make_fake_mnist(tmp_path / "src", n=20)
    mnist_module.make_mini(tmp_path / "src", tmp_path / "out", n_train=5, n_test=3)
    (x, y), (xt, _) = mnist(tmp_path / "out")
    assert x.shape == (5, 784) and xt.shape == (3, 784) and y.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(DatasetError, match="fewer than the 21 requested"):
        mnist_module.make_mini(tmp_path / "src", tmp_path / "out", n_train=21)


needs_real_mnist = pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not found at {REAL_MNIST}")


@needs_real_mnist
def test_real_mnist():
    (x, y), (xt, yt) = mnist(REAL_MNIST, download=False)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    (xm, ym), (xtm, ytm) = mnist_mini()  # the packaged subset is the head of the real data
    np.testing.assert_array_equal(xm, x[:6000])
    np.testing.assert_array_equal(ym, y[:6000])
    np.testing.assert_array_equal(xtm, xt[:1000])
    np.testing.assert_array_equal(ytm, yt[:1000])
