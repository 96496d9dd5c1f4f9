"""The implementations the MLP benchmark can time, by name.

Adding one is one entry in :data:`IMPLEMENTATIONS`: a name, the library it needs, a factory
``Setup -> Runner`` and the ``--backend`` groups that include it. A bpx variant with another
step is ``bpx_loop(backend, step=factory)`` where ``factory(net, loss, optimizer)`` returns
``step(xb, tb) -> loss`` (see ``bpx-jax-jit``); a ``fit`` option is ``bpx_fit(backend, **options)``.

``groups`` are the ``--backend`` choices that run an implementation by default
(``cpu`` = everything on the CPU); ``--impls`` picks implementations by name instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from .bpx_runners import bpx_fit, bpx_loop, compiled_step
from .peers import JaxJit, NumpyHand, TorchAutograd
from .runner import Runner, Setup

BASELINE = "numpy-hand"
BACKEND_CHOICES = ("cpu", "numpy", "torch", "jax", "cupy")


@dataclass(frozen=True)
class ImplSpec:
    """An implementation: its ``library`` (the module it needs), how to build it from a
    :class:`Setup`, the ``--backend`` groups that include it, and a one-line description."""

    name: str
    library: str
    make: Callable[[Setup], Runner]
    groups: tuple[str, ...]
    about: str


_ALL_GROUPS = BACKEND_CHOICES

IMPLEMENTATIONS: dict[str, ImplSpec] = {spec.name: spec for spec in (
    ImplSpec(BASELINE, "numpy", NumpyHand, _ALL_GROUPS, "hand-written NumPy loop (baseline, host)"),
    ImplSpec("torch-autograd", "torch", TorchAutograd, ("cpu", "torch", "cupy"),
             "PyTorch nn.Sequential + autograd + optim.SGD"),
    ImplSpec("jax-jit", "jax", JaxJit, ("cpu", "jax"), "JAX, jax.jit-compiled train step"),
    ImplSpec("bpx-numpy", "numpy", bpx_loop("numpy"), ("cpu", "numpy"), "bpx on NumPy, train-step loop"),
    ImplSpec("bpx-numpy-fit", "numpy", bpx_fit("numpy"), ("cpu", "numpy"), "bpx on NumPy, Sequential.fit"),
    ImplSpec("bpx-torch", "torch", bpx_loop("torch"), ("cpu", "torch"), "bpx on PyTorch, train-step loop"),
    ImplSpec("bpx-torch-fit", "torch", bpx_fit("torch"), ("torch",), "bpx on PyTorch, Sequential.fit"),
    ImplSpec("bpx-jax", "jax", bpx_loop("jax"), ("cpu", "jax"), "bpx on JAX (eager), train-step loop"),
    ImplSpec("bpx-jax-fit", "jax", bpx_fit("jax"), ("jax",), "bpx on JAX (eager), Sequential.fit"),
    ImplSpec("bpx-jax-jit", "jax", bpx_loop("jax", step=compiled_step), ("cpu", "jax"),
             "bpx on JAX, jax.jit-compiled step (bpx.training.compiled), train-step loop"),
    ImplSpec("bpx-jax-jit-fit", "jax", bpx_fit("jax", compile=True), ("jax",),
             "bpx on JAX, Sequential.fit(compile=True)"),
    ImplSpec("bpx-cupy", "cupy", bpx_loop("cupy"), ("cupy",), "bpx on CuPy, train-step loop"),
    ImplSpec("bpx-cupy-fit", "cupy", bpx_fit("cupy"), ("cupy",), "bpx on CuPy, Sequential.fit"),
)}


@dataclass(frozen=True)
class Selected:
    """An implementation chosen for this run and the device it runs on (``None``: CPU)."""

    spec: ImplSpec
    device: str | None

    @property
    def label(self) -> str:
        return self.spec.name if self.device in (None, "cpu") else f"{self.spec.name} ({self.device})"


def select(backend: str, device: str | None, names: list[str] | None = None) -> tuple[list[Selected], list[str]]:
    """The implementations to run for ``--backend``/``--device`` (or exactly ``names``), the
    baseline first; also notes on those skipped because their library is not installed."""
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown --backend {backend!r}; choose from {', '.join(BACKEND_CHOICES)}")
    if backend == "cpu" and device not in (None, "cpu"):
        raise ValueError("--device needs a single --backend (numpy, torch, jax or cupy), not 'cpu'")
    if names:
        unknown = [n for n in names if n not in IMPLEMENTATIONS]
        if unknown:
            raise ValueError(f"unknown implementation(s) {unknown}; known: {', '.join(IMPLEMENTATIONS)}")
        specs = [IMPLEMENTATIONS[n] for n in names]
    else:
        specs = [s for s in IMPLEMENTATIONS.values() if backend in s.groups]
    specs.sort(key=lambda s: s.name != BASELINE)
    chosen, notes = [], []
    for spec in specs:
        if importlib.util.find_spec(spec.library) is None:
            notes.append(f"{spec.name} skipped: {spec.library} is not installed")
            continue
        chosen.append(Selected(spec, device_for(spec, backend, device)))
    return chosen, notes


def device_for(spec: ImplSpec, backend: str, device: str | None) -> str | None:
    """The device an implementation runs on: the host for NumPy; ``--device`` for the selected
    library; for ``--backend cupy`` the PyTorch peer runs on the same CUDA device as CuPy."""
    if spec.library == "numpy":
        return None
    if backend == "cupy":
        index = str(device or 0).removeprefix("cuda").lstrip(":") or "0"
        return index if spec.library == "cupy" else f"cuda:{index}"
    if spec.library == backend:
        return device
    return None
