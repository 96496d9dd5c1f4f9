"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW, on flat buffers.

``update(store, grads)`` updates the trainable part of a network's flat parameter buffer from the
flat gradient ``grads``; the optimizer's state (velocity, moments) is flat too. The arithmetic
is written once as augmented assignments on local names that are returned
(:meth:`Optimizer.rule`): in place on mutable arrays (NumPy, CuPy, PyTorch, array-api-strict),
a new array on JAX (the store then rebinds it), and traceable by ``jax.jit`` with the learning
rate and step count as traced values. Hyperparameters are Python floats and the step count a
Python int, so no step reads anything back from the device.

An optimizer binds to the network it first updates: using it on another network raises
:class:`StateError` (call :meth:`Optimizer.reset` to reuse it). When a parameter is frozen or
unfrozen, the state of the parameters that stay trainable is kept.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from ..checks import check_bool, check_float
from ..errors import BpxTypeError, BpxValueError, StateError

if TYPE_CHECKING:
    from ..nn.parameter import Parameter, ParameterStore


class Optimizer:
    """Base class. ``lr`` may be changed between steps (learning-rate schedules do); ``iterations``
    counts the updates applied; ``state`` maps names (``"velocity"``, ``"m"``, ...) to flat arrays
    aligned with the bound network's trainable parameters. (In bpx a *step* is a whole training
step — forward, backward, update; the optimizer does the update.)"""

    name: ClassVar[str] = "optimizer"
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lr: float) -> None:
        self.lr = check_float(lr, f"{type(self).__name__} lr", 0.0, low_open=True)
        #: The learning rate a schedule scales (``fit`` sets ``lr`` from it each epoch; saved with
        #: the optimizer, so a resumed run continues its schedule).
        self.base_lr = self.lr
        self.iterations = 0
        self.state: dict[str, Any] = {}
        self._store: weakref.ref[ParameterStore] | None = None
        self._layout: dict[Parameter, tuple[int, int]] = {}
        self._layout_version = -1

    # ------------------------------------------------------------------ binding
    def bind(self, store: ParameterStore) -> None:
        """Attach to ``store`` (creating zero state), check it is the network this optimizer
        updates, and follow a changed trainable set. Called by every update."""
        bound = self._store() if self._store is not None else None
        if bound is store and store.layout_version == self._layout_version and not store.layout_pending:
            return  # the usual case, checked in a few attribute reads
        if bound is None:
            self._store = weakref.ref(store)
            self._layout = _trainable_slices(store)
            self._layout_version = store.layout_version
            master = store.backend.master_dtype
            self.state = {key: store.backend.zeros((store.trainable_size,), master) for key in self.keys()}
            return
        if bound is not store:
            raise StateError(f"this {type(self).__name__} holds the state (and step count {self.iterations}) of "
                             "another network; create a new optimizer for this one, or call optimizer.reset() "
                             "to reuse it from scratch")
        store.refresh_layout()
        if store.layout_version != self._layout_version:
            self._remap(store)

    def is_bound_to(self, store: ParameterStore) -> bool:
        """True when this optimizer updates ``store``'s network."""
        return self._store is not None and self._store() is store

    def is_bound_elsewhere(self, store: ParameterStore) -> bool:
        """True when this optimizer holds the state of a network other than ``store``'s (it would
        refuse to update ``store``)."""
        bound = self._store() if self._store is not None else None
        return bound is not None and bound is not store

    def _remap(self, store: ParameterStore) -> None:
        """Carry each still-trainable parameter's state into the new layout (zeros for new ones)."""
        backend, xp = store.backend, store.backend.xp
        new_layout = _trainable_slices(store)
        for key, flat in list(self.state.items()):
            parts = []
            for p in store.trainable:
                old = self._layout.get(p)
                parts.append(flat[old[0]:old[1]] if old is not None else backend.zeros((p.size,), flat.dtype))
            self.state[key] = xp.concat(parts) if parts else backend.zeros((0,), backend.master_dtype)
        self._layout, self._layout_version = new_layout, store.layout_version

    def reset(self) -> None:
        """Forget the state, the step count and the bound network."""
        self.iterations = 0
        self.state = {}
        self._store = None
        self._layout = {}
        self._layout_version = -1

    def keys(self) -> tuple[str, ...]:
        """The names of the state arrays this optimizer keeps with its current hyperparameters."""
        return self.state_keys

    # ------------------------------------------------------------------ the update
    def update(self, store: ParameterStore, grads: Any, *, scratch: bool = False, finite: Any = None) -> None:
        """Apply one update to ``store``'s trainable parameters from the flat gradient ``grads``.
        ``scratch=True`` lets the update overwrite ``grads`` (saving temporaries). ``finite`` (a 0-d
        boolean device array, mixed precision) makes the update conditional without reading it
        back: where it is false, parameters and state keep their values (the step count still
        advances)."""
        self.bind(store)
        values = store.trainable_values()
        xp = store.backend.xp
        if finite is None:
            new_values, self.state = self.rule(values, grads, dict(self.state), self.lr, self.iterations + 1, xp,
                                                 scratch)
        else:
            trial = {key: xp.asarray(v, copy=True) for key, v in self.state.items()}
            updated, trial = self.rule(xp.asarray(values, copy=True), grads, trial, self.lr, self.iterations + 1,
                                       xp, scratch)
            self.state = {key: xp.where(finite, trial[key], old) for key, old in self.state.items()}
            new_values = xp.where(finite, updated, values)
            if store.backend.mutable and not store.functional:
                values[...] = new_values
                new_values = values
        store.set_trainable_values(new_values, values)
        store.values_updated()
        self.iterations += 1

    def rule(self, w: Any, g: Any, state: dict[str, Any], lr: Any, t: Any, xp: Any,
             scratch: bool) -> tuple[Any, dict[str, Any]]:
        """The update rule on flat arrays: returns ``(w, state)``; ``t`` is the 1-based step
        number; ``lr`` and ``t`` may be traced values (no branching on them)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ per-parameter views (checkpoints)
    def parameter_state(self, store: ParameterStore) -> dict[Parameter, dict[str, Any]]:
        """``{parameter: {key: array shaped like it}}`` for every trainable parameter of ``store``."""
        if not self.state:
            return {}
        self.bind(store)
        xp = store.backend.xp
        return {p: {key: xp.reshape(flat[start:stop], p.shape) for key, flat in self.state.items()}
                for p, (start, stop) in self._layout.items()}

    def load_parameter_state(self, store: ParameterStore, values: dict[Parameter, dict[str, Any]],
                             iterations: int) -> None:
        """Bind to ``store`` and set the state from per-parameter host arrays (missing: zeros)."""
        from ..host.arrays import concat_flat

        self.reset()
        self.bind(store)
        for key in self.keys():
            parts = [values[p][key] if p in values else _zeros_like_host(p.shape) for p in store.trainable]
            self.state[key] = store.backend.asarray(concat_flat(parts), store.backend.master_dtype, copy=True,
                                                    name=f"optimizer state {key!r}")
        self.iterations = iterations

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _trainable_slices(store: ParameterStore) -> dict[Parameter, tuple[int, int]]:
    slices = store.slices()
    return {p: slices[p] for p in store.trainable}


def _zeros_like_host(shape: tuple[int, ...]) -> Any:
    from ..host.arrays import host_zeros

    return host_zeros(shape)


class SGD(Optimizer):
    """Gradient descent ``w ← w − lr·g``, with optional momentum (PyTorch's convention:
    ``v ← μv + g``; step ``v``, or ``g + μv`` with Nesterov) and L2 weight decay
    (``g ← g + λw``). With the defaults this is the textbook update."""

    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = check_float(momentum, "SGD momentum", 0.0, 1.0, high_open=True)
        self.weight_decay = check_float(weight_decay, "SGD weight_decay", 0.0)
        self.nesterov = check_bool(nesterov, "SGD nesterov")
        if self.nesterov and self.momentum == 0.0:
            raise BpxValueError("SGD: nesterov=True needs momentum > 0")

    def keys(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def rule(self, w: Any, g: Any, state: dict[str, Any], lr: Any, t: Any, xp: Any,
             scratch: bool) -> tuple[Any, dict[str, Any]]:
        if self.weight_decay:
            g, scratch = g + self.weight_decay * w, True
        if self.momentum:
            v = state["velocity"]
            v *= self.momentum
            v += g
            state["velocity"] = v
            if self.nesterov:
                g, scratch = g + self.momentum * v, True
            else:
                g, scratch = v, False
        if scratch:  # same arithmetic, without a temporary
            g *= lr
            w -= g
        else:
            w -= lr * g
        return w, state

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with PyTorch's update form
    ``w ← w − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)``; ``weight_decay`` is L2 added to the gradient."""

    name = "adam"
    state_keys = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        cls = type(self).__name__
        self.beta1 = check_float(beta1, f"{cls} beta1", 0.0, 1.0, high_open=True)
        self.beta2 = check_float(beta2, f"{cls} beta2", 0.0, 1.0, high_open=True)
        self.eps = check_float(eps, f"{cls} eps", 0.0)
        self.weight_decay = check_float(weight_decay, f"{cls} weight_decay", 0.0)

    def decay(self, w: Any, g: Any, lr: Any) -> tuple[Any, Any]:
        """L2 weight decay: added to the gradient."""
        return w, (g + self.weight_decay * w if self.weight_decay else g)

    def rule(self, w: Any, g: Any, state: dict[str, Any], lr: Any, t: Any, xp: Any,
             scratch: bool) -> tuple[Any, dict[str, Any]]:
        w, g = self.decay(w, g, lr)
        b1, b2 = self.beta1, self.beta2
        m, v = state["m"], state["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        # ``** 0.5`` (not math.sqrt): inside a compiled step ``t`` and ``lr`` are traced arrays
        denom = xp.sqrt(v) * (1.0 / (1.0 - b2**t) ** 0.5) + self.eps
        w -= (lr / (1.0 - b1**t)) * m / denom
        return w, {"m": m, "v": v}

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): ``w ← w(1 − lr·λ)`` before
    the Adam step. Default ``weight_decay=0.01`` as in PyTorch."""

    name = "adamw"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay)

    def decay(self, w: Any, g: Any, lr: Any) -> tuple[Any, Any]:
        if self.weight_decay:
            w *= 1.0 - lr * self.weight_decay
        return w, g


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adam, AdamW)}


def get_optimizer(optimizer: str | Optimizer, **hyperparameters: Any) -> Optimizer:
    """An :class:`Optimizer` from a name (``sgd``, ``adam``, ``adamw``) and keyword
    hyperparameters, or an instance as is."""
    if isinstance(optimizer, Optimizer):
        if hyperparameters:
            raise BpxValueError("hyperparameters are given with the optimizer instance, not separately")
        return optimizer
    if not isinstance(optimizer, str):
        raise BpxTypeError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a bpx Optimizer, "
                           f"got {type(optimizer).__name__}")
    key = optimizer.strip().lower()
    if key not in OPTIMIZERS:
        raise BpxValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[key](**hyperparameters)
    except TypeError as err:
        raise BpxTypeError(f"optimizer {key!r}: {err}") from None
