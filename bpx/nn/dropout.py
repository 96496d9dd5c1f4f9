"""``Dropout``: inverted dropout with masks from :mod:`bpx.random`, keyed by (seed, step, position).

No state is kept anywhere: the mask of a training step is a pure function of the network's seed
(``ctx.seed``), the training-step count (``ctx.step``) and the layer's position in the network
(``ctx.position``, used as the generator's ``stream``). So a run is reproducible, identical on
every backend and device (the generator is bit-identical everywhere), and resumable from a
checkpoint (which saves ``step_count``): see ``docs/regularisation.md``.
"""

from __future__ import annotations

from typing import Any

from ..checks import check_float
from ..random import KEY_LIMIT, keep_mask
from .layer import Context, Layer
from .parameter import Gradients


def fold_key(value: int) -> int:
    """A non-negative Python int folded into ``[0, 2**31)`` (the key range of :mod:`bpx.random`):
    unchanged below 2**31, else its 31-bit chunks xored together. Network seeds may be any
    non-negative int; every seed below 2**31 keeps its own masks."""
    while value >= KEY_LIMIT:
        value = (value & (KEY_LIMIT - 1)) ^ (value >> 31)
    return value


def dropout_stream(position: int) -> int:
    """The :mod:`bpx.random` stream of a dropout layer at ``position`` of its network: the position
    itself (other random uses should take streams that cannot collide with positions, e.g.
    ``2**20 * purpose + position``, see ``docs/random.md``)."""
    return position


class Dropout(Layer):
    """Inverted dropout: in training mode each input element is kept with probability
    ``1 − rate`` and scaled by ``1 / (1 − rate)`` (zeroed otherwise), so the expected output
    equals the input; in inference mode the layer is the identity.

    The mode is the pass's: ``fit``, ``train_step`` and ``net.forward(x, training=True)`` train;
    ``predict``, ``evaluate``, validation and ``net.forward(x)`` infer.

    The mask of one training pass is ``keep_mask(xp, device, x.shape, 1 − rate, seed=net.seed,
    step=step, stream=position)`` from :mod:`bpx.random`: ``step`` is the network's training-step
    count (``net.step_count``, saved in checkpoints; a traced counter under ``jax.jit``) and
    ``position`` this use's index in ``net.layers``. The same (seed, step, position) gives the
    same mask, bit for bit, on every backend; each step and each position gets a fresh one.
    A Python-int step is taken modulo 2**31 (as the generator does with array steps), and a seed
    of 2**31 or more is folded into 31 bits (:func:`fold_key`).

    Works on inputs of any per-sample shape (the mask has the input's shape). Has no parameters.
    The backward pass multiplies by the mask it saved (no second draw).

    Args:
        rate: the probability of dropping an element, in ``[0, 1)``; ``0`` makes the layer the
            identity in both modes.
    """

    def __init__(self, rate: float = 0.5) -> None:
        self.rate = check_float(rate, "Dropout rate", 0.0, 1.0, high_open=True)

    def forward(self, x: Any, ctx: Context) -> tuple[Any, Any]:
        if not ctx.training or self.rate == 0.0:
            return x, None
        backend = ctx.backend
        xp = backend.xp
        step = ctx.step
        if isinstance(step, int):
            step &= KEY_LIMIT - 1
        mask = keep_mask(xp, backend.device, tuple(x.shape), 1.0 - self.rate, seed=fold_key(ctx.seed), step=step,
                         stream=dropout_stream(ctx.position))
        scaled = xp.astype(mask, x.dtype)
        scaled *= 1.0 / (1.0 - self.rate)  # a fresh array: in place on mutable backends, rebinds on JAX
        return x * scaled, scaled

    def backward(self, saved: Any, grad_y: Any, grads: Gradients, ctx: Context, need_input_grad: bool) -> Any:
        if not need_input_grad:
            return None
        if saved is not None:
            grad_y *= saved  # in place: grad_y is ours
        return grad_y

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate}
