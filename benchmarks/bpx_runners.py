"""bpx as the benchmark runs it: a minibatch loop over :func:`bpx.training.train_step` (the one
training step, on prepared device arrays: the loop ``fit`` runs minus its metrics) and ``fit``.

A compiled or otherwise different step plugs in through ``step``: a function
``step(net, loss, optimizer) -> callable(xb, tb) -> loss`` (see :func:`bpx_loop`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpx
from bpx import to_host
from bpx.training import DeviceData, train_step
from bpx.training.compiled import compiled_batch_function

from .runner import Setup, synchronize
from .threads import configure_torch
from .workload import EpochPlan

StepFactory = Callable[[Any, Any, Any], Callable[[Any, Any], Any]]


def build_network(setup: Setup, backend: str, device: str | None) -> Any:
    """The benchmark MLP on ``backend``/``device`` (float32) holding the shared initial weights."""
    if backend == "torch":
        import torch

        configure_torch(torch)
    layers: list[Any] = []
    last = len(setup.weights) - 1
    for i, (w, _) in enumerate(setup.weights):
        layers.append(bpx.Dense(int(w.shape[0]), int(w.shape[1])))
        if i < last:
            layers.append(bpx.ReLU())
    net = bpx.Sequential(*layers, backend=backend, device=device, dtype="float32", seed=setup.workload.seed)
    values = [v for pair in setup.weights for v in pair]
    net.load_state_dict(dict(zip(net.named_parameters(), values, strict=True)))
    return net


def default_step(net: Any, loss: Any, optimizer: Any) -> Callable[[Any, Any], Any]:
    """:func:`bpx.training.train_step` on prepared device arrays as ``fit`` runs it (the optimizer
    working in the gradient buffer), returning the loss (a 0-d device array)."""

    def step(xb: Any, tb: Any) -> Any:
        return train_step(net, xb, tb, loss, optimizer, keep_gradients=False).loss

    return step


def _prepare(runner: Any, setup: Setup, backend: str) -> None:
    """Give ``runner`` the network, loss, optimizer and the device-resident data."""
    runner.net = net = build_network(setup, backend, setup.device)
    runner.loss = bpx.SoftmaxCrossEntropy()
    runner.optimizer = bpx.SGD(lr=setup.workload.lr)
    runner.x = net.prepare_inputs(setup.data.x)
    runner.t = net.prepare_targets(setup.data.y, runner.loss)


class BpxLoop:
    """The minibatch loop of ``fit`` without its metrics: the order moved to the device once per
    epoch, batches gathered on the device, losses summed on the device and read back once per
    epoch."""

    def __init__(self, setup: Setup, backend: str, step: StepFactory | None = None) -> None:
        _prepare(self, setup, backend)
        self.n = setup.data.n
        self.slices = setup.workload.slices(self.n)
        self.step = (step or default_step)(self.net, self.loss, self.optimizer)

    def epoch(self, plan: EpochPlan) -> float:
        net, take, step = self.net, self.net.backend.take_rows, self.step
        perm = net.backend.asarray(plan.order, net.backend.int_dtype)
        total = None
        for lo, hi in self.slices:
            idx = perm[lo:hi]
            value = step(take(self.x, idx), take(self.t, idx)) * float(hi - lo)
            total = value if total is None else total + value
        result = float(to_host(total)) / self.n
        synchronize(p.value for p in net.parameters())
        return result


def compiled_step(net: Any, loss: Any, optimizer: Any) -> Callable[[Any, Any], Any]:
    """bpx's ``jax.jit``-compiled step (what ``fit(compile=True)`` runs), returning the loss. It
    gathers its batch inside the compiled function; here it is handed the already gathered batch
    and takes all of its rows."""
    compiled = compiled_batch_function(net, loss, optimizer)
    rows: dict[int, Any] = {}

    def step(xb: Any, tb: Any) -> Any:
        n = int(xb.shape[0])
        if n not in rows:
            rows[n] = net.backend.asarray(list(range(n)), net.backend.int_dtype)
        return compiled(DeviceData(xb, tb, None), rows[n])[0]

    return step


class BpxFit:
    """``Sequential.fit`` for one epoch (``verbose=0``) on device-resident data: the public
    API with its per-batch accuracy count, NaN guard snapshot and history. ``fit_options``
    are passed on (e.g. ``compile=True``)."""

    def __init__(self, setup: Setup, backend: str, **fit_options: Any) -> None:
        _prepare(self, setup, backend)
        self.batch_size = setup.workload.batch_size
        self.fit_options = fit_options

    def epoch(self, plan: EpochPlan) -> float:
        history = self.net.fit(self.x, self.t, loss=self.loss, optimizer=self.optimizer, epochs=1,
                               batch_size=self.batch_size, seed=plan.seed, verbose=0, **self.fit_options)
        synchronize(p.value for p in self.net.parameters())
        return float(history["loss"][-1])


def bpx_loop(backend: str, step: StepFactory | None = None) -> Callable[[Setup], BpxLoop]:
    """A registry factory: :class:`BpxLoop` on ``backend`` with an optional custom ``step``."""
    return lambda setup: BpxLoop(setup, backend, step)


def bpx_fit(backend: str, **fit_options: Any) -> Callable[[Setup], BpxFit]:
    """A registry factory: :class:`BpxFit` on ``backend`` with ``fit`` options."""
    return lambda setup: BpxFit(setup, backend, **fit_options)
