"""Parameters in one flat buffer, and the gradient sink that backward writes into.

Every parameter of a network is a view into one flat 1-D array, ``ParameterStore.values``, laid
out trainable parameters first (in network order), then frozen ones. An update, an allreduce or
a NaN check is then a handful of operations on one array, whatever the number of layers.
Gradients of the trainable parameters live in a second flat array of the trainable size; layers
write their contributions into it through :class:`Gradients` — straight into the buffer with
``matmul(out=)`` where the backend has it, summed over the uses of a shared layer.

On JAX (immutable arrays) the same code runs functionally: an update returns a new buffer, the
store rebinds it and derives the views again; gradients are collected and joined once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..errors import BpxValueError, NonFiniteError, ShapeError, StateError
from ..host.arrays import check_representable, concat_flat, element_count, is_finite_host, is_host, to_host
from ..host.init import Initializer, draw, full_host, host_values

if TYPE_CHECKING:
    from ..backend import Backend

HostArray = Any  # a NumPy array (host data); core modules never import NumPy themselves


class Parameter:
    """A named array of a layer (``weight``, ``bias``, ...), trained or frozen (``trainable``).

    Before its layer belongs to a network a parameter has a shape and a way to get its initial
    values (explicit values, or an initialiser and the fans it needs); afterwards ``value`` is a
    view into the network's flat buffer (assigning to it copies into the buffer, after checking
    the shape and that the values are finite) and ``grad`` is ∂E/∂value of the last
    ``train_step`` (``None`` when frozen, before any step, and after ``fit``, whose optimizer
    works in the gradient buffer).
    """

    __slots__ = ("__weakref__", "_initial", "_store", "_trainable", "_transposed", "_transposed_version", "_view",
                 "_view_version", "fans", "init", "name", "shape")

    def __init__(self, name: str, shape: tuple[int, ...], *, init: Initializer | None = None,
                 value: Any = None, trainable: bool = True, fans: tuple[int, int] = (1, 1), owner: str = "") -> None:
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        if element_count(self.shape) > sys.maxsize:
            raise ShapeError(f"{f'{owner} {name}'.strip()}: shape {self.shape} has more elements than an array "
                             "can hold")
        self.init = init
        self.fans = fans
        label = f"{owner} {name}".strip()
        # a number fills the shape when the network is built (checked now, allocated then)
        self._initial = None if value is None else host_values(value, self.shape if _is_array_like(value) else (),
                                                               label)
        self._trainable = bool(trainable)
        self._store: ParameterStore | None = None
        self._view: Any = None
        self._view_version = -1
        self._transposed: Any = None
        self._transposed_version = -1

    @property
    def size(self) -> int:
        return element_count(self.shape)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, flag: bool) -> None:
        flag = bool(flag)
        if flag != self._trainable:
            self._trainable = flag
            if self._store is not None:
                self._store.layout_changed()

    def initial_value(self, rng: Any) -> HostArray:
        """Host float64 values to start from: the explicit ones, else drawn from ``rng``."""
        if self._initial is not None:
            return self._initial if self._initial.ndim else full_host(self.shape, float(self._initial))
        if self.init is None:
            raise StateError(f"parameter {self.name!r} has neither values nor an initialiser")
        return draw(self.init, rng, self.shape, self.fans, self.name)

    @property
    def value(self) -> Any:
        store = self._store
        if store is not None:
            if store.functional:  # inside a compiled step: derived from its inputs, nothing cached
                return store.view(self)
            if self._view_version == store.version:
                return self._view  # the hot path
        view = self._bound().view(self)
        self._view, self._view_version = view, self._bound().version
        return view

    @value.setter
    def value(self, new: Any) -> None:
        self._bound().assign(self, new)

    @property
    def value_t(self) -> Any:
        """``value.T`` of a 2-D parameter, a view cached while the buffer is unchanged (on mutable
        backends the buffer is updated in place, so one view serves every step)."""
        store = self._store
        if store is not None:
            if store.functional:
                return self.value.T
            if self._transposed_version == store.version:
                return self._transposed
        transposed = self.value.T
        self._transposed, self._transposed_version = transposed, self._bound().version
        return transposed

    def joint_value(self, following: Parameter, shape: tuple[int, int]) -> Any:
        """This parameter's values and those of ``following`` as one array shaped ``shape``, a view
        of the buffer (see :meth:`ParameterStore.joint_view`); ``None`` when they are not neighbours."""
        return self._bound().joint_view(self, following, shape)

    @property
    def grad(self) -> Any:
        return None if self._store is None else self._store.grad_view(self)

    def _bound(self) -> ParameterStore:
        if self._store is None:
            raise StateError(f"parameter {self.name!r} has no values yet: its layer is not part of a network "
                             "(build one, e.g. bpx.Sequential(layer, ...))")
        return self._store

    def __repr__(self) -> str:
        frozen = "" if self._trainable else ", frozen"
        return f"Parameter({self.name!r}, shape={self.shape}{frozen})"


class Buffer:
    """A named array of a layer that is not trained by gradients but saved with it (e.g. a
    BatchNorm running mean), created filled with ``fill`` when the network is built. ``value`` is
    a device array; layers *replace* it (``buffer.value = new``, never an in-place update), so
    snapshots and compiled steps can treat it as a plain value."""

    __slots__ = ("fill", "name", "shape", "value")

    def __init__(self, name: str, shape: tuple[int, ...], fill: float = 0.0) -> None:
        self.name, self.shape, self.fill = name, tuple(int(d) for d in shape), float(fill)
        self.value: Any = None

    def build(self, backend: Backend) -> None:
        """Create the initial value on ``backend``'s device."""
        self.value = backend.xp.full(self.shape, self.fill, dtype=backend.master_dtype, device=backend.device)

    def __repr__(self) -> str:
        return f"Buffer({self.name!r}, shape={self.shape})"


class ParameterStore:
    """The flat buffers of one network's parameters (see the module docstring).

    ``values``: all parameters, trainable first; ``grads``: ∂E/∂ of the trainable ones (mutable
    backends keep one buffer for the network's life); ``version`` changes whenever ``values`` is
    rebound or re-laid out, ``layout_version`` when the trainable set changes.
    """

    def __init__(self, backend: Backend, params: list[Parameter], host: dict[Parameter, HostArray],
                 names: dict[Parameter, str] | None = None) -> None:
        self.backend = backend
        self.params = list(params)
        #: What error messages call each parameter (``layers.0.weight``; default its own name).
        self.names = names or {p: p.name for p in self.params}
        self.version = 0
        self.layout_version = 0
        self._views: dict[Parameter, Any] = {}
        self._grad_views: dict[Parameter, Any] = {}
        self.grads: Any = None
        self.grads_valid = False  # True after a step that kept its gradients
        #: Run steps without writing into persistent buffers (compiled steps set it: the values are
        #: the compiled function's inputs, and gradients are collected and joined instead).
        self.functional = False
        self._compute: Any = None
        self._compute_version = -1
        self._write_buffer: Any = None
        self._traced_compute: Any = None
        self._layout()
        self.load_host(host)
        for p in self.params:
            p._store = self

    # ------------------------------------------------------------------ layout
    def _layout(self) -> None:
        order = [p for p in self.params if p.trainable] + [p for p in self.params if not p.trainable]
        self.order = order
        self.offsets: dict[Parameter, tuple[int, int]] = {}
        start = 0
        for p in order:
            self.offsets[p] = (start, start + p.size)
            start += p.size
        self.size = start
        self.trainable = [p for p in order if p.trainable]
        self.trainable_size = sum(p.size for p in self.trainable)
        self._stale_layout = False

    def layout_changed(self) -> None:
        """Called when a parameter's ``trainable`` flag changes: the layout is rebuilt before the
        next use (the values are kept; an optimizer bound to the old layout remaps its state)."""
        self._stale_layout = True
        self.version += 1

    @property
    def layout_pending(self) -> bool:
        """True when a ``trainable`` flag changed and the layout has not been rebuilt yet."""
        return self._stale_layout

    def refresh_layout(self) -> None:
        """Apply a pending layout change (a no-op when there is none)."""
        if not self._stale_layout:
            return
        old = {p: self.values[start:stop] for p, (start, stop) in self.offsets.items()}
        self._layout()
        xp = self.backend.xp
        parts = [old[p] for p in self.order]
        self.values = xp.concat(parts) if parts else self.backend.zeros((0,))
        self.grads = None
        self.grads_valid = False
        self.layout_version += 1
        self._rebound()

    def slices(self) -> dict[Parameter, tuple[int, int]]:
        """``{parameter: (start, stop)}`` in :attr:`values` (trainable ones also index :attr:`grads`)."""
        self.refresh_layout()
        return dict(self.offsets)

    # ------------------------------------------------------------------ values
    def load_host(self, host: dict[Parameter, HostArray]) -> None:
        """Set every parameter from finite float64 host arrays (one transfer to the device)."""
        for p in self.order:
            check_representable(host[p], self.backend.master_dtype_name, self.names[p])
        flat = concat_flat([host[p] for p in self.order])
        self.values = self.backend.asarray(flat, self.backend.master_dtype, copy=True, name="parameters")
        self.grads = None
        self.grads_valid = False
        self._rebound()

    def replace_values(self, values: Any) -> None:
        """Adopt ``values`` (a flat array of the full layout) as the parameter buffer."""
        self.values = values
        self._rebound()

    def enter_compiled(self, values: Any) -> Any:
        """Start a compiled step: ``values`` (the compiled function's input) is the buffer, views are
        derived from it afresh (nothing cached, no counter read: a tracer would specialise on it)
        and gradients are collected instead of written in place. Returns what
        :meth:`exit_compiled` needs to give the store its own buffer back."""
        saved = self.values
        self.functional = True
        self.values = values
        self._traced_compute = None
        return saved

    def exit_compiled(self, saved: Any) -> None:
        """End a compiled step started by :meth:`enter_compiled` (also after an error)."""
        self.functional = False
        self.values = saved
        self._traced_compute = None

    def _rebound(self) -> None:
        if not self.functional:  # a compiled step must not depend on (or bump) the Python counter
            self.version += 1
        self._views.clear()
        self._grad_views.clear()
        self._traced_compute = None

    def values_updated(self) -> None:
        """Called after the values changed in place (an optimizer update): under mixed precision
        the low-precision copy the passes compute with, and the views into it, are made anew."""
        if self.backend.mixed and not self.functional:
            self._rebound()

    def compute_values(self) -> Any:
        """The buffer the passes read: :attr:`values` itself, or under mixed precision its copy in
        the low-precision dtype (one cast per update, cached until the values change)."""
        if not self.backend.mixed:
            return self.values
        if self.functional:
            if self._traced_compute is None:
                self._traced_compute = self.backend.xp.astype(self.values, self.backend.dtype)
            return self._traced_compute
        if self._compute_version != self.version:
            self._compute = self.backend.xp.astype(self.values, self.backend.dtype)
            self._compute_version = self.version
        return self._compute

    def view(self, p: Parameter) -> Any:
        """``p``'s values as the passes read them: a view of :meth:`compute_values` shaped ``p.shape``
        (cached per version)."""
        self.refresh_layout()
        cached = self._views.get(p)
        if cached is None:
            start, stop = self.offsets[p]
            cached = self.backend.xp.reshape(self.compute_values()[start:stop], p.shape)
            if not self.functional:
                self._views[p] = cached
        return cached

    def joint_view(self, first: Parameter, second: Parameter, shape: tuple[int, int]) -> Any:
        """The values of ``first`` followed by ``second`` as one array shaped ``shape`` — a view of
        :meth:`compute_values` (cached per version) — or ``None`` when the two are not neighbours
        in the buffer. ``Dense`` reads ``W`` ``(in, out)`` and ``b`` ``(out,)`` as one ``(in + 1, out)``
        matrix this way (see :meth:`Gradients.add_matmul_joint`)."""
        self.refresh_layout()
        key = (first, second)
        cached = self._views.get(key)  # type: ignore[call-overload]
        if cached is None:
            start, middle = self.offsets[first]
            if self.offsets[second][0] != middle:
                return None
            cached = self.backend.xp.reshape(self.compute_values()[start:self.offsets[second][1]], shape)
            if not self.functional:
                self._views[key] = cached  # type: ignore[index]
        return cached

    def trainable_values(self) -> Any:
        """The trainable part of :attr:`values` (a view on mutable backends)."""
        if self._stale_layout:
            self.refresh_layout()
        if self.trainable_size == self.size:
            return self.values
        cached = None if self.functional else self._views.get(None)  # type: ignore[call-overload]
        if cached is None:
            cached = self.values[:self.trainable_size]
            if not self.functional:
                self._views[None] = cached  # type: ignore[index]
        return cached

    def set_trainable_values(self, new: Any, old: Any = None) -> None:
        """Adopt ``new`` as the trainable part after a functional update (JAX); a no-op when the
        update already happened in place (``new`` is ``old``, the :meth:`trainable_values` it started
        from, looked up again when not given)."""
        if new is (self.trainable_values() if old is None else old) and not self.functional:
            return
        if self.trainable_size == self.size:
            self.values = new
        else:
            self.values = self.backend.xp.concat([new, self.values[self.trainable_size:]])
        self._rebound()

    def assign(self, p: Parameter, new: Any) -> None:
        """Copy ``new`` (host data or a same-backend array) into ``p``'s place in the buffer."""
        backend, xp = self.backend, self.backend.xp
        self.refresh_layout()
        if is_host(new) or backend.holds_data:
            name = self.names[p]
            host = host_values(new if is_host(new) else to_host(new), p.shape, name)
            check_representable(host, backend.master_dtype_name, name)
            array = backend.asarray(host, backend.master_dtype, copy=True, name=name)
        else:  # PyTorch's meta device: shapes only
            array = backend.asarray(new, backend.master_dtype, name=p.name)
            if tuple(array.shape) != p.shape:
                raise ShapeError(f"{p.name}: expected shape {p.shape}, got {tuple(array.shape)}")
        start, stop = self.offsets[p]
        if backend.mutable:
            self.values[start:stop] = xp.reshape(array, (-1,))
            self.values_updated()
        else:
            self.values = self.values.at[start:stop].set(xp.reshape(array, (-1,)))
            self._rebound()

    def host_values(self) -> dict[Parameter, HostArray]:
        """Every parameter copied to the host (one transfer)."""
        self.backend.require_data("reading parameter values")
        flat = to_host(self.values)
        return {p: flat[start:stop].reshape(p.shape).copy() for p, (start, stop) in self.slices().items()}

    # ------------------------------------------------------------------ gradients
    def gradient_buffer(self) -> Any:
        """The flat buffer backward writes the trainable parameters' gradients into (in the compute
        dtype; mutable backends allocate it once)."""
        self.refresh_layout()
        buffer = self._write_buffer
        if buffer is None or tuple(buffer.shape) != (self.trainable_size,):
            buffer = self._write_buffer = self.backend.zeros((self.trainable_size,))
            self._grad_views.clear()
        return buffer

    def grad_slot(self, p: Parameter, shape: tuple[int, ...] | None = None) -> Any:
        """``p``'s view of the gradient buffer, shaped ``p.shape`` (or ``shape``, of the same size)."""
        key = p if shape is None else (p, shape)
        cached = self._grad_views.get(key)
        if cached is None:
            start, stop = self.offsets[p]
            cached = self._grad_views[key] = self.backend.xp.reshape(self.gradient_buffer()[start:stop],
                                                                    p.shape if shape is None else shape)
        return cached

    def joint_grad_slot(self, first: Parameter, second: Parameter, shape: tuple[int, int]) -> Any:
        """The gradient buffer of two neighbouring trainable parameters as one array shaped ``shape``."""
        key = (first, second, shape)
        cached = self._grad_views.get(key)  # type: ignore[call-overload]
        if cached is None:
            start, stop = self.offsets[first][0], self.offsets[second][1]
            cached = self._grad_views[key] = self.backend.xp.reshape(  # type: ignore[index]
                self.gradient_buffer()[start:stop], shape)
        return cached

    def grad_view(self, p: Parameter) -> Any:
        """``p.grad``: its gradient of the last kept step (in the master dtype), else ``None``."""
        if not self.grads_valid or not p.trainable or self._stale_layout or self.grads is None:
            return None
        start, stop = self.offsets[p]
        return self.backend.xp.reshape(self.grads[start:stop], p.shape)

    def adopt_gradients(self, flat: Any, keep: bool) -> None:
        """Record ``flat`` as the last step's gradient; ``keep`` makes ``p.grad`` show it. When it is
        not the write buffer (JAX, mixed precision), the write buffer stays for the next step.
        (Inside a compiled step the gradient is transient: nothing is recorded.)"""
        if self.functional:
            return
        self.grads = flat
        self.grads_valid = keep

    # ------------------------------------------------------------------ checks
    def all_finite(self) -> Any:
        """A 0-d boolean device array: are all values finite? (No host synchronisation.)"""
        xp = self.backend.xp
        return xp.all(xp.isfinite(self.values))

    def check_finite(self, what: str) -> None:
        """Raise :class:`NonFiniteError` naming the first non-finite parameter (one read-back of a
        flag; the values themselves only when one is bad)."""
        if not self.backend.holds_data or bool(to_host(self.all_finite())):
            return
        for p, host in self.host_values().items():
            if not is_finite_host(host):
                raise NonFiniteError(f"{what}: parameter {self.names[p]!r} holds NaN or inf")


class Gradients:
    """∂E/∂param contributions of one backward pass, for the trainable parameters of a store.

    Layers call :meth:`add_matmul` (∂E/∂p += a @ b) or :meth:`add` (∂E/∂p += g); contributions
    to frozen parameters are ignored (layers may skip computing them: :meth:`wants`). A parameter
    used several times (a shared layer) receives the sum. :meth:`flat` returns the flat gradient.
    """

    __slots__ = ("_parts", "_written", "backend", "in_place", "store")

    def __init__(self, store: ParameterStore) -> None:
        self.store = store
        self.backend = store.backend
        #: Write into the store's persistent gradient buffer (mutable backends, outside compiled steps).
        self.in_place = store.backend.mutable and not store.functional
        self._written: set[Parameter] = set()
        self._parts: dict[Parameter, Any] = {}

    @staticmethod
    def wants(p: Parameter | None) -> bool:
        return p is not None and p.trainable

    def add_matmul(self, p: Parameter, a: Any, b: Any) -> None:
        """∂E/∂p += a @ b for 2-D ``a`` and ``b`` whose product has ``p``'s size (its shape may differ,
        e.g. ``(1, k)`` for a ``(k,)`` bias); written into the flat buffer with ``out=`` where the
        backend allows."""
        if not p._trainable:
            return
        shape = (a.shape[0], b.shape[1])
        if not self.in_place:
            product = a @ b
            self.add(p, product if shape == p.shape else self.backend.xp.reshape(product, p.shape))
            return
        key = p if shape == p.shape else (p, shape)
        slot = self.store._grad_views.get(key)
        if slot is None:
            slot = self.store.grad_slot(p, None if key is p else shape)
        self._write_product(slot, a, b, (p,))

    def add_matmul_joint(self, first: Parameter, second: Parameter, a: Any, b: Any) -> None:
        """∂E/∂first and ∂E/∂second += a @ b, whose rows are those of ``first`` followed by the one of
        ``second`` (``Dense``: the augmented input's transpose times δ gives ``[∂E/∂W; ∂E/∂b]``). Both
        must be trainable neighbours (see :meth:`ParameterStore.joint_view`): one product, written
        straight into the buffer where the backend allows."""
        if not self.in_place:
            product = a @ b
            rows = first.shape[0]
            self.add(first, product[:rows, ...])
            self.add(second, self.backend.xp.reshape(product[rows:, ...], second.shape))
            return
        slot = self.store.joint_grad_slot(first, second, (a.shape[0], b.shape[1]))
        self._write_product(slot, a, b, (first, second))

    def _write_product(self, slot: Any, a: Any, b: Any, params: tuple[Parameter, ...]) -> None:
        """``slot = a @ b`` (with ``out=`` where the backend allows) for the first contribution to
        ``params``; ``slot += a @ b`` for a later one (a shared layer)."""
        if params[0] in self._written:
            slot += self.backend.matmul(a, b)
        else:
            self.backend.matmul_into(a, b, slot)
            self._written.update(params)

    def add(self, p: Parameter, g: Any) -> None:
        """∂E/∂p += g (``g`` shaped ``p.shape``)."""
        if not p.trainable:
            return
        if not self.in_place:
            previous = self._parts.get(p)
            self._parts[p] = g if previous is None else previous + g
            return
        slot = self.store.grad_slot(p)
        if p in self._written:
            slot += g
        else:
            slot[...] = g
        self._written.add(p)

    def contribution(self, p: Parameter) -> Any:
        """What has been accumulated for ``p`` so far (``None`` if nothing)."""
        if not self.in_place:
            return self._parts.get(p)
        return self.store.grad_slot(p) if p in self._written else None

    def flat(self) -> Any:
        """The flat gradient of the trainable parameters (zeros where nothing was contributed)."""
        store, backend = self.store, self.backend
        if self.in_place:
            if len(self._written) != len(store.trainable):
                for p in store.trainable:
                    if p not in self._written:
                        store.grad_slot(p)[...] = 0.0
            return store.gradient_buffer()
        xp = backend.xp
        parts = [xp.reshape(self._parts[p], (-1,)) if p in self._parts else backend.zeros((p.size,))
                 for p in store.trainable]
        if not parts:
            return backend.zeros((0,))
        return parts[0] if len(parts) == 1 else xp.concat(parts)


def _is_array_like(value: Any) -> bool:
    """True for values with a shape (lists, arrays); False for plain numbers (which fill a shape)."""
    return isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0


def check_value_count(host: dict[str, Any], expected: dict[str, tuple[int, ...]], what: str) -> None:
    """Raise :class:`BpxValueError` unless ``host`` has exactly the names of ``expected``."""
    missing, unexpected = sorted(expected.keys() - host.keys()), sorted(host.keys() - expected.keys())
    if missing or unexpected:
        raise BpxValueError(f"{what} does not match the network: missing {missing}, unexpected {unexpected}")


class LossScale:
    """Dynamic loss scaling for mixed precision, decided on the device (no host synchronisation).

    The loss gradient is multiplied by ``scale`` before the backward pass (so small gradients do
    not underflow in float16) and the float32 gradient divided by it afterwards. A step whose
    gradient is not finite is skipped and halves the scale; ``growth_interval`` finite steps in a
    row double it (PyTorch's ``GradScaler`` conventions). Both numbers are :class:`Buffer`\\ s, so
    snapshots, compiled steps and checkpoints carry them. bfloat16 (float32's exponent range)
    starts at 1, float16 at 2¹⁵.
    """

    growth_interval = 2000

    def __init__(self, initial: float) -> None:
        self.scale = Buffer("scale", (), initial)
        self.good_steps = Buffer("good_steps", (), 0.0)

    def buffers(self) -> list[Buffer]:
        return [self.scale, self.good_steps]

    def update(self, finite: Any, xp: Any) -> None:
        """After a step: grow the scale after ``growth_interval`` finite steps, halve it after a
        non-finite one (``finite`` is a 0-d boolean device array)."""
        scale, good = self.scale.value, self.good_steps.value
        good = xp.where(finite, good + 1.0, 0.0)
        grow = good >= float(self.growth_interval)
        self.scale.value = xp.where(finite, xp.where(grow, scale * 2.0, scale), scale * 0.5)
        self.good_steps.value = xp.where(grow, 0.0, good)
