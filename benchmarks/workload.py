"""The benchmark workload: data, initial weights, epoch orders and the GEMM work of an epoch.

Every implementation receives the same host arrays from here: float32 inputs, int64 labels,
float32 weights ``W`` shaped ``(in, out)`` with zero biases, and per epoch the same permutation
(drawn exactly as ``bpx``'s ``fit(seed=...)`` draws its first epoch's order, so ``fit`` can
join the comparison).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The real MNIST beside the checkout (``../shared/datasets/mnist``), used when present.
SHARED_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"

MNIST_SIZES = (784, 256, 256, 10)
QUICK_SIZES = (784, 16, 16, 10)

Weights = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Workload:
    """What one timed epoch does: an MLP of ``sizes`` (ReLU between layers, softmax
    cross-entropy on the logits), plain SGD with ``lr``, minibatches of ``batch_size``."""

    sizes: tuple[int, ...]
    batch_size: int
    lr: float = 0.01
    seed: int = 0

    def n_batches(self, n: int) -> int:
        return math.ceil(n / self.batch_size)

    def slices(self, n: int) -> list[tuple[int, int]]:
        """``(lo, hi)`` of each minibatch in an epoch of ``n`` samples."""
        return [(lo, min(lo + self.batch_size, n)) for lo in range(0, n, self.batch_size)]


@dataclass
class Dataset:
    """Host training data and where it came from."""

    x: np.ndarray
    y: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + self.y.nbytes)


def load_dataset(n: int, data_dir: str | Path | None = None, prefer_mini: bool = False) -> Dataset:
    """``n`` MNIST training samples as float32 ``(n, 784)`` in [0, 1] and int64 labels.

    Source order: ``data_dir`` (or the shared real MNIST) unless ``prefer_mini``; the packaged
    ``mnist_mini`` subset tiled up to ``n``; synthetic data as a last resort. Notes say which.
    """
    from bpx.datasets import DatasetError, mnist, mnist_mini

    notes: list[str] = []
    directory = Path(data_dir) if data_dir is not None else SHARED_MNIST
    if not prefer_mini:
        if directory.is_dir():
            try:
                (x, y), _ = mnist(data_dir=directory)
                if n <= len(x):
                    return Dataset(x[:n], y[:n], f"MNIST train ({directory})", notes)
                notes.append(f"{directory} has {len(x)} samples, fewer than {n}; tiling")
                return _tiled(x, y, n, f"MNIST train ({directory}) tiled to {n}", notes)
            except DatasetError as err:
                notes.append(f"could not read MNIST from {directory}: {err}")
        else:
            notes.append(f"real MNIST not found at {directory}")
    try:
        (x, y), _ = mnist_mini()
        if n <= len(x):
            return Dataset(x[:n], y[:n], "bpx.datasets.mnist_mini", notes)
        notes.append(f"mnist_mini has {len(x)} samples; tiled to {n} (timing is unaffected, accuracy is)")
        return _tiled(x, y, n, f"bpx.datasets.mnist_mini tiled to {n}", notes)
    except (DatasetError, OSError) as err:
        notes.append(f"mnist_mini unavailable ({err}); using synthetic data (same shapes and dtypes)")
    rng = np.random.default_rng(12345)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=n, dtype=np.int64)
    return Dataset(x, y, "synthetic uniform [0, 1) inputs, random labels", notes)


def _tiled(x: np.ndarray, y: np.ndarray, n: int, source: str, notes: list[str]) -> Dataset:
    reps = math.ceil(n / len(x))
    return Dataset(np.ascontiguousarray(np.tile(x, (reps, 1))[:n]), np.tile(y, reps)[:n], source, notes)


def initial_weights(sizes: tuple[int, ...], seed: int) -> Weights:
    """He-uniform ``W`` ``(in, out)`` drawn in float64 with NumPy, cast to float32; zero biases."""
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        limit = math.sqrt(6.0 / fan_in)
        w = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        weights.append((w, np.zeros(fan_out, dtype=np.float32)))
    return weights


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's batch order: ``order`` equals ``default_rng(seed).permutation(n)``, which is
    what ``bpx.Sequential.fit(..., seed=seed)`` visits in its first epoch."""

    index: int
    seed: int
    order: np.ndarray


def epoch_plan(base_seed: int, index: int, n: int) -> EpochPlan:
    """The order of epoch ``index`` (0 is the warm-up), the same for every implementation."""
    seed = base_seed * 1000 + index + 1
    return EpochPlan(index, seed, np.random.default_rng(seed).permutation(n))


# ---------------------------------------------------------------------- the GEMM work of an epoch
@dataclass(frozen=True)
class Gemm:
    """One matrix product ``(m, k) @ (k, n)`` of a training step; ``role`` says which."""

    role: str
    layer: int
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def step_gemms(sizes: tuple[int, ...], batch: int) -> list[Gemm]:
    """The GEMMs of one training step on ``batch`` rows: forward ``x @ W``, ``grad_W = xᵀ @ g``
    and ``grad_x = g @ Wᵀ`` for every layer but the first (the data needs no gradient)."""
    gemms = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        gemms.append(Gemm("forward x@W", i, batch, fan_in, fan_out))
        gemms.append(Gemm("grad_W x.T@g", i, fan_in, batch, fan_out))
        if i > 0:
            gemms.append(Gemm("grad_x g@W.T", i, batch, fan_out, fan_in))
    return gemms


def epoch_flops(sizes: tuple[int, ...], n: int) -> int:
    """GEMM FLOPs of one epoch of ``n`` samples: ``3·2·n·Σ in·out`` minus the input layer's
    ``grad_x`` (``2·n·in₀·out₀``). Independent of the batch size."""
    total = sum(a * b for a, b in itertools.pairwise(sizes))
    return 6 * n * total - 2 * n * sizes[0] * sizes[1]
