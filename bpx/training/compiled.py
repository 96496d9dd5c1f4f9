"""Compiled training: the *same* :func:`bpx.training.train_step`, traced by the backend's compiler.

The step is pure apart from reading and writing the network's flat parameter buffer, its
buffers and the optimizer's state. The compiled function takes those arrays as inputs (with the
learning rate, the optimizer's step count and the network's step count, so schedules, Adam's bias
correction and random masks stay exact without recompiling), runs the ordinary step on them
(:meth:`ParameterStore.enter_compiled`: views derived afresh, gradients collected), and returns the new
arrays. Whatever happens while tracing, the network and the optimizer keep their own arrays.

* **JAX**: ``jax.jit`` over a ``lax.scan`` of the step across a chunk of equal batches — the whole
  epoch (or each ``check_every`` batches) is one dispatch; a last, smaller batch is one more
  compiled call.
* **PyTorch**: ``torch.compile`` of one step (on CUDA devices with ``mode="reduce-overhead"``,
  which replays the step as a CUDA graph).

Compiled functions are cached across ``fit`` calls, keyed by the architecture, the loss, the
optimizer's type and fixed hyperparameters, the dtype, the device and the batch shape: a second
``fit`` (or a grid search over learning rates) compiles nothing. They run on a private copy of the
network (the *template*) whose code is traced; the user's network only supplies the arrays.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import BpxValueError
from ..nn.losses import Loss
from ..nn.network import Network
from ..optim.optimizers import Optimizer
from .data import DeviceData, RunBatch
from .step import train_step

COMPILERS = ("jax", "torch")


@dataclass
class CompileStats:
    """How often compiled functions were built and how long their first calls took (seconds)."""

    builds: int = 0
    first_call_seconds: list[float] = field(default_factory=list)


#: Compilation statistics of this process (the benchmarks report compile time apart from epochs).
STATS = CompileStats()
_CACHE: dict[tuple[Any, ...], _Compiled] = {}


def compiled_batch_function(net: Network, loss: Loss, optimizer: Optimizer) -> RunBatch:
    """``run_batch(data, idx) -> (losses, corrects)``: ``idx`` holds the rows of one batch ``(m,)``
    or of several equal batches ``(k, m)`` (JAX runs them in one compiled call); the results are
    0-d or ``(k,)`` device arrays (``corrects`` is ``None`` without an accuracy reference)."""
    if net.backend.name not in COMPILERS:
        raise BpxValueError(f"compile=True needs a backend with a compiler (jax: jax.jit, torch: torch.compile); "
                            f"this network uses {net.backend.name!r}, which runs the same step eagerly")
    optimizer.bind(net.store)

    def run_batch(data: DeviceData, idx: Any) -> tuple[Any, Any]:
        compiled = _compiled(net, loss, optimizer, data, tuple(idx.shape))
        return compiled(net, optimizer, data, idx)

    return run_batch


def _key(net: Network, loss: Loss, optimizer: Optimizer, data: DeviceData, idx_shape: tuple[int, ...]) -> tuple:
    hyper = {k: v for k, v in optimizer.hyperparameters().items() if k != "lr"}
    frozen = tuple(p.trainable for p in net.parameters())
    reference = None if data.reference is None else (
        "targets" if data.reference is data.targets else (str(data.reference.dtype), data.reference.ndim))
    return (net.backend.name, str(net.backend.device), net.backend.dtype_name, json.dumps(net.config(), sort_keys=True),
            frozen, type(loss).__name__, json.dumps(loss.config(), sort_keys=True), type(optimizer).__name__,
            json.dumps(hyper, sort_keys=True), str(data.targets.dtype), data.targets.ndim, reference, idx_shape)


def _compiled(net: Network, loss: Loss, optimizer: Optimizer, data: DeviceData,
              idx_shape: tuple[int, ...]) -> _Compiled:
    key = _key(net, loss, optimizer, data, idx_shape)
    compiled = _CACHE.get(key)
    if compiled is None:
        compiled = _CACHE[key] = _Compiled(net, loss, optimizer, len(idx_shape) == 2,
                                          data.reference is data.targets)
    return compiled


class _Compiled:
    """One compiled function over a template copy of the network and optimizer."""

    def __init__(self, net: Network, loss: Loss, optimizer: Optimizer, chunked: bool, reference_is_targets: bool):
        self.template = net.to(net.backend)
        self.optimizer = type(optimizer)(**optimizer.hyperparameters())
        self.optimizer.bind(self.template.store)
        self.loss = loss
        self.reference_is_targets = reference_is_targets
        self.backend = net.backend
        self.called = False
        if net.backend.name == "jax":
            import jax

            self.fn = jax.jit(self._chunk if chunked else self._one)
        else:
            import torch

            on_cuda = getattr(net.backend.device, "type", "") == "cuda"
            self.fn = torch.compile(self._one, mode="reduce-overhead" if on_cuda else None, dynamic=False)
        STATS.builds += 1

    # ------------------------------------------------------------------ traced code
    @contextlib.contextmanager
    def _loaded(self, values: Any, state: dict[str, Any], buffer_values: list[Any], lr: Any,
                iterations: Any) -> Iterator[None]:
        """The template holds the traced arrays for the duration of the block, then gets its own back."""
        net, opt = self.template, self.optimizer
        buffers = net.step_buffers()
        saved = opt.state, opt.lr, opt.iterations, [b.value for b in buffers]
        own = net.store.enter_compiled(values)
        opt.state, opt.lr, opt.iterations = dict(state), lr, iterations
        for b, v in zip(buffers, buffer_values, strict=True):
            b.value = v
        try:
            yield
        finally:
            net.store.exit_compiled(own)
            opt.state, opt.lr, opt.iterations, old = saved
            for b, v in zip(buffers, old, strict=True):
                b.value = v

    def _step(self, x: Any, targets: Any, reference: Any, idx: Any, step: Any) -> tuple[Any, Any]:
        """One training step of the template on the rows ``idx`` (inside a trace)."""
        take = self.backend.take_rows
        batch_targets = take(targets, idx)
        batch_reference = None if reference is None else (
            batch_targets if self.reference_is_targets else take(reference, idx))
        result = train_step(self.template, take(x, idx), batch_targets, self.loss, self.optimizer,
                            reference=batch_reference, keep_gradients=False, step=step)
        return result.loss, result.correct

    def _state_out(self) -> tuple[Any, dict[str, Any], list[Any]]:
        net = self.template
        return net.store.values, self.optimizer.state, [b.value for b in net.step_buffers()]

    def _one(self, values: Any, state: dict[str, Any], buffer_values: list[Any], lr: Any, iterations: Any,
             step: Any, x: Any, targets: Any, reference: Any, idx: Any) -> tuple[Any, ...]:
        with self._loaded(values, state, buffer_values, lr, iterations):
            value, correct = self._step(x, targets, reference, idx, step)
            return (*self._state_out(), value, correct)

    def _chunk(self, values: Any, state: dict[str, Any], buffer_values: list[Any], lr: Any, iterations: Any,
               step: Any, x: Any, targets: Any, reference: Any, idx: Any) -> tuple[Any, ...]:
        from jax import lax

        def body(carry: tuple[Any, ...], batch_idx: Any) -> tuple[tuple[Any, ...], tuple[Any, Any]]:
            values, state, buffer_values, iterations, step = carry
            with self._loaded(values, state, buffer_values, lr, iterations):
                value, correct = self._step(x, targets, reference, batch_idx, step)
                values, state, buffer_values = self._state_out()
            return (values, state, buffer_values, iterations + 1, step + 1), (value, correct)

        carry = (values, state, buffer_values, iterations, step)
        (values, state, buffer_values, _, _), (losses, corrects) = lax.scan(body, carry, idx)
        return values, state, buffer_values, losses, corrects

    # ------------------------------------------------------------------ calling it
    def __call__(self, net: Network, optimizer: Optimizer, data: DeviceData, idx: Any) -> tuple[Any, Any]:
        optimizer.bind(net.store)
        count = int(idx.shape[0]) if idx.ndim == 2 else 1
        buffers = net.step_buffers()
        lr, iterations, step = optimizer.lr, optimizer.iterations, net.step_count
        if self.backend.name == "torch":  # traced as tensors, so new values do not recompile
            xp, device = self.backend.xp, self.backend.device
            lr = xp.asarray(lr, dtype=self.backend.master_dtype, device=device)
            iterations = xp.asarray(iterations, dtype=xp.int64, device=device)
            step = xp.asarray(step, dtype=xp.int64, device=device)
        reference = None if data.reference is None else (
            data.targets if data.reference is data.targets else data.reference)
        start = time.perf_counter()
        values, state, buffer_values, losses, corrects = self.fn(
            net.store.values, optimizer.state, [b.value for b in buffers], lr, iterations, step,
            data.x, data.targets, reference, idx)
        if not self.called:
            self.called = True
            STATS.first_call_seconds.append(time.perf_counter() - start)
        net.store.replace_values(values)
        optimizer.state = dict(state)
        optimizer.iterations += count
        net.step_count += count
        for b, v in zip(buffers, buffer_values, strict=True):
            b.value = v
        return losses, corrects


def clear_cache() -> None:
    """Forget every compiled function of this process (they are rebuilt on demand)."""
    _CACHE.clear()

