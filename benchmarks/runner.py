"""What every timed implementation looks like, and how a device is made to finish its work."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .workload import Dataset, EpochPlan, Weights, Workload


@dataclass
class Setup:
    """What an implementation is built from: host data, host initial weights, the workload and
    the device it should run on (``None``: its library's default, the CPU here)."""

    data: Dataset
    weights: Weights
    workload: Workload
    device: str | None = None


class Runner(Protocol):
    """One implementation, built once with its data and weights already on its device."""

    def epoch(self, plan: EpochPlan) -> float:
        """Train one epoch in ``plan.order``; return the epoch's mean training loss as a host
        float, after the device has finished every update (the timer stops on return)."""
        ...


def synchronize(arrays: Iterable[Any]) -> None:
    """Block until the device work producing ``arrays`` is done (CuPy, PyTorch CUDA, JAX); a
    no-op for host arrays."""
    synced: set[str] = set()
    for a in arrays:
        module = type(a).__module__.split(".")[0]
        if module == "jax" or module == "jaxlib":
            a.block_until_ready()
        elif module == "torch":
            if a.device.type == "cuda" and str(a.device) not in synced:
                import torch

                torch.cuda.synchronize(a.device)
                synced.add(str(a.device))
        elif module == "cupy":
            key = f"cupy:{a.device.id}"
            if key not in synced:
                a.device.synchronize()
                synced.add(key)
