"""The one training step: forward, loss, backward, (gradient reduction,) update.

:func:`train_step` works on prepared device arrays and is what every form of training runs:
``Sequential.train_step`` (after preparing host data), ``fit``'s eager loop, the ``jax.jit``
compiled step (:mod:`bpx.training.compiled`, which traces this very function) and data-parallel
training over MPI (:mod:`bpx.training.distributed`, which passes ``reduce``). All parameters
move simultaneously along the gradient of the same forward pass (true gradient descent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..nn.losses import Loss
from ..nn.network import Network, Observer
from ..nn.parameter import Gradients
from ..optim.optimizers import Optimizer
from .metrics import correct_count

#: ``reduce(flat_grads, loss, correct) -> (flat_grads, loss, correct)``: combines the step's
#: results across processes before the update (see :mod:`bpx.training.distributed`).
Reduce = Callable[[Any, Any, Any], tuple[Any, Any, Any]]


@dataclass
class StepResult:
    """What a step computed, as device arrays: the batch loss before the update (0-d), the
    outputs before the update ``(n, *output_shape)`` and, when a reference was given, the number
    of correct predictions (0-d integer)."""

    loss: Any
    outputs: Any
    correct: Any = None


def train_step(net: Network, x: Any, targets: Any, loss: Loss, optimizer: Optimizer, *, reference: Any = None,
               keep_gradients: bool = True, reduce: Reduce | None = None, observer: Observer | None = None,
               step: Any = None) -> StepResult:
    """One forward/backward/update of ``net`` on the batch ``(x, targets)`` (prepared device arrays).

    ``reference``: accuracy reference of the batch (see :mod:`bpx.training.metrics`);
    ``keep_gradients``: make each ``param.grad`` show this step's gradient (otherwise the optimizer
    may work in the gradient buffer); ``reduce``: combine gradients across processes;
    ``observer``: sees every array of the passes (explain mode); ``step``: the step number that keys
    random masks — by default ``net.step_count``, which the step then advances; a caller that
    passes ``step`` (a traced value inside compiled steps) keeps the count itself.
    No host synchronisation.
    """
    advance = step is None
    backend = net.backend
    xp = backend.xp
    ctx = net.context(training=True, step=step)
    passed = net.forward_pass(x, ctx, observer)
    scaler = net.loss_scale
    if scaler is None:
        value, grad_outputs = loss.value_and_grad(passed.outputs, targets, ctx)
    else:  # mixed precision: the loss in float32, its gradient scaled into the low precision
        value, grad_outputs = loss.value_and_grad(xp.astype(passed.outputs, backend.master_dtype), targets, ctx)
        grad_outputs = xp.astype(grad_outputs * scaler.scale.value, backend.dtype)
    correct = None if reference is None else correct_count(passed.outputs, reference, xp)
    grads = Gradients(net.store)
    net.backward(passed, grad_outputs, grads, ctx, observer)
    flat = grads.flat()
    if scaler is not None:
        flat = xp.astype(flat, backend.master_dtype) / scaler.scale.value
    if reduce is not None:
        flat, value, correct = reduce(flat, value, correct)
    net.store.adopt_gradients(flat, keep_gradients)
    if scaler is None:
        optimizer.update(net.store, flat, scratch=not keep_gradients)
    else:  # a step with a non-finite gradient changes nothing but the scale
        finite = xp.all(xp.isfinite(flat))
        optimizer.update(net.store, flat, scratch=not keep_gradients, finite=finite)
        scaler.update(finite, xp)
    if advance:
        net.step_count += 1
    net.loss = loss
    return StepResult(value, passed.outputs, correct)
