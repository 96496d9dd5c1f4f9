"""An opt-in compiled training step for JAX: ``jax.jit`` over the *same* Array API step.

``Sequential._train_step`` is pure apart from reading and writing parameter/optimizer
attributes, so it can be traced: the compiled function loads traced arrays into the
parameters and optimizer state, runs the ordinary step, and returns the new arrays. The
learning rate and the step count are traced arguments too, so schedules and Adam's bias
correction stay correct without recompiling. The dataset stays where it is (an argument); the
batch is gathered inside the compiled function. One compilation per batch size (the last,
smaller batch of an epoch compiles once more).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .losses import Loss
from .metrics import correct_count
from .optim import Optimizer

if TYPE_CHECKING:
    from .network import Sequential
    from .train import _Data


class CompiledStep:
    """``step(data, idx) -> (loss, correct)``, the step ``fit`` runs (see :mod:`bpx.steps`), as one
    ``jax.jit``-compiled function: gathering the batch rows ``idx``, forward, backward, the
    optimizer's update and the count of correct predictions all happen inside it."""

    def __init__(self, net: Sequential, loss: Loss, optimizer: Optimizer) -> None:
        if net.backend.name != "jax":
            raise ValueError(f"compile=True needs the jax backend (jax.jit); this network uses "
                             f"{net.backend.name!r}. Other backends run the same step eagerly.")
        import jax

        self.net, self.loss, self.optimizer = net, loss, optimizer
        self.params = net.parameters()
        for p in self.params:  # create optimizer state before tracing, so its structure is fixed
            if p.trainable and p not in optimizer.state:
                optimizer.state[p] = optimizer.init_state(p)
        self._jitted = jax.jit(self._pure)

    def _pure(self, values: list[Any], states: list[dict[str, Any]], lr: Any, iterations: Any, x: Any,
              t: Any, labels: Any, idx: Any) -> tuple[Any, ...]:
        net, opt, xp = self.net, self.optimizer, self.net.xp
        saved = opt.lr, opt.iterations, opt.state
        try:
            for p, v in zip(self.params, values, strict=True):
                p.value = v
                p.grad = None
            opt.lr, opt.iterations = lr, iterations
            opt.state = {p: dict(s) for p, s in zip(self.params, states, strict=True) if p in saved[2]}
            value, y = net._train_step(xp.take(x, idx, axis=0), xp.take(t, idx, axis=0), self.loss, opt,
                                       reuse_grads=True)
            correct = None if labels is None else correct_count(y, xp.take(labels, idx, axis=0), xp)
            new_states = [opt.state.get(p, {}) for p in self.params]
            return [p.value for p in self.params], new_states, value, correct
        finally:
            opt.lr, opt.iterations, opt.state = saved

    def __call__(self, data: _Data, idx: Any) -> tuple[Any, Any]:
        opt = self.optimizer
        values = [p.value for p in self.params]
        states = [opt.state.get(p, {}) for p in self.params]
        new_values, new_states, value, correct = self._jitted(values, states, opt.lr, opt.iterations, data.x,
                                                              data.t, data.labels, idx)
        opt.iterations += 1
        for p, v, s in zip(self.params, new_values, new_states, strict=True):
            p.value = v
            if p in opt.state:
                opt.state[p] = s
        return value, correct
