"""The Array API discipline: core modules never import NumPy, and the training hot path never
synchronises with the host (run on PyTorch's 'meta' device, where any read-back raises)."""

import ast
from pathlib import Path

import numpy as np
import pytest

import bpx

PACKAGE = Path(bpx.__file__).parent
#: Modules that form the core: written against the Array API only.
CORE = ["layers.py", "losses.py", "optim.py", "network.py", "train.py", "trace.py", "metrics.py",
        "schedules.py", "callbacks.py"]


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_core_modules_never_import_numpy():
    checked = 0
    for name in CORE:
        path = PACKAGE / name
        if not path.exists():
            continue
        checked += 1
        bad = [m for m in imported_modules(path) if m == "numpy" or m.startswith("numpy.")]
        assert not bad, f"bpx/{name} imports {bad}: core modules must use the Array API namespace"
    assert checked >= 4


@pytest.fixture
def meta():
    torch = pytest.importorskip("torch")
    return torch, bpx.get_backend("torch", "meta", "float32")


@pytest.mark.parametrize("loss, targets", [
    ("softmax_cross_entropy", "labels"), ("softmax_cross_entropy", "onehot"), ("half_squared_error", "onehot"),
    ("mean_squared_error", "onehot"), ("binary_cross_entropy", "onehot"),
])
@pytest.mark.parametrize("optimizer", [bpx.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
                                       bpx.Adam(weight_decay=1e-4), bpx.AdamW()], ids=["sgd", "adam", "adamw"])
def test_train_step_has_no_host_sync(meta, loss, targets, optimizer):
    torch, backend = meta
    rng = np.random.default_rng(0)
    net = bpx.Sequential(bpx.Dense(6, 8), bpx.ReLU(), bpx.Dense(8, 8), bpx.Sigmoid(), bpx.Dense(8, 8),
                         bpx.Tanh(), bpx.Dense(8, 8), bpx.LeakyReLU(), bpx.Dense(8, 4), backend=backend, seed=0)
    x = torch.asarray(rng.normal(size=(16, 6)).astype(np.float32), device="meta")
    labels = rng.integers(0, 4, size=16)
    t = torch.asarray(labels if targets == "labels" else np.eye(4, dtype=np.float32)[labels], device="meta")
    for _ in range(3):
        value = net.train_step(x, t, loss, optimizer)
    assert value.device.type == "meta" and value.shape == ()
    assert all(p.value.device.type == "meta" for p in net.parameters())
