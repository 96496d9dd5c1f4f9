"""Shared fixtures. The suite runs every backend test on each installed backend/device/dtype
(see ``bpx.testing.backend_params``); the header lists what ran and why the rest skipped."""

import os

# array-api-strict is pinned to the 2024.12 standard (what JAX declares); set before import.
os.environ.setdefault("ARRAY_API_STRICT_API_VERSION", "2024.12")

from pathlib import Path

import pytest

from bpx.testing import ALL_CONFIGS, availability

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


def pytest_report_header(config):
    lines = ["bpx backends/devices/dtypes:"]
    for cfg in ALL_CONFIGS:
        reason = availability(cfg)
        lines.append(f"  {cfg.id:<36} {'runs' if reason is None else 'SKIP: ' + reason}")
    return lines


@pytest.fixture
def shared_mnist() -> Path:
    """The real MNIST folder beside the project (skips when absent)."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST
