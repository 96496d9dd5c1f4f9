"""Explain mode: every number of one backpropagation step, recorded from the real training step.

:func:`explain` copies the network (``net.to(net.backend)``) and runs the one public training
step, :func:`bpx.training.train_step`, on the copy with a real :class:`bpx.SGD`, watching it
through an observer that copies every array flowing between the layers. The gradients ∂E/∂w in
the record *are* the ones the step computed and applied; the only values computed for display
are the activation slopes ∂out/∂net (by each activation's own ``slope``) and the per-output
error terms (by the loss itself on 1×1 slices). Everything is converted to host Python floats at
the end.

Naming (textbook order, see ``docs/backprop.md``):

* neurons: inputs ``i1, i2, ...``; hidden ``h1, h2, ...`` with one hidden layer, ``h<l>_<j>``
  (neuron j of hidden layer l) with several; outputs ``o1, o2, ...``.
* weights ``w1, w2, ...`` numbered layer by layer, within a layer by target neuron then by input:
  ``w_k`` is ``layers[d].weight[i, j]`` (``W`` is shaped ``(in, out)``).
* biases: ``b<l>`` when the bias of Dense layer l is frozen and equal for all its neurons (the
  classic shared bias), else ``b<l>_<j>`` for neuron j.

Shapes: with ``n`` samples every per-neuron quantity is a tuple of ``n`` values (one per sample);
E is the loss of the batch (bpx losses average over samples), so each per-sample δ carries the
factor 1/n and ∂E/∂w = Σ_s ∂E/∂out[s] · ∂out/∂net[s] · ∂net/∂w[s].
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ..checks import check_int
from ..errors import BpxValueError
from ..host.arrays import to_host
from ..nn.activations import ACTIVATIONS, Activation, Softmax
from ..nn.dense import Dense
from ..nn.layer import Layer
from ..nn.losses import HalfSquaredError, Loss, MeanSquaredError, one_hot
from ..nn.network import Network
from ..nn.parameter import Parameter
from ..optim.optimizers import SGD
from ..training.step import train_step

#: Size limits beyond which a derivation is no longer readable (inputs count as a layer).
MAX_WEIGHTS = 64
MAX_NEURONS = 16
MAX_SAMPLES = 8

#: Losses whose E splits into per-output terms: E = (1/n) Σ_samples Σ_outputs term, where
#: term = scale × loss(one output of one sample). ``k`` is the number of outputs.
_ERROR_TERM_SCALE = {HalfSquaredError: lambda k: 1.0, MeanSquaredError: lambda k: 1.0 / k}

_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}

Values = tuple[float, ...]


@dataclass(frozen=True)
class Neuron:
    """One neuron; every field holds one value per sample.

    ``net`` is the Dense output (weighted input), ``out`` the activation output, ``d_out`` ∂E/∂out
    and ``delta`` ∂E/∂net (both from ``backward``), ``slope`` ∂out/∂net (``None`` for softmax,
    whose outputs are coupled). Output neurons also carry ``target`` and, for losses that split
    per output, ``error`` (the neuron's term of E, e.g. ½(target − out)²).
    """

    name: str
    net: Values
    out: Values
    d_out: Values
    slope: Values | None
    delta: Values
    target: Values | None = None
    error: Values | None = None


@dataclass(frozen=True)
class ParamTrace:
    """One weight or bias: its bpx location, value, gradient and updated value.

    ``source`` is the neuron the weight comes from (``None`` for a bias); ``targets`` the
    neuron(s) it feeds (several for a shared bias). ``grad`` is ∂E/∂param from ``backward``
    (``None`` when frozen). ``factors`` holds per sample the chain-rule factors
    (∂E/∂out, ∂out/∂net, ∂net/∂param) whose sum over samples of products is ``grad``;
    after a softmax they are (δ, ``None``, ∂net/∂param): δ = ∂E/∂net replaces the first two.
    """

    name: str
    location: str
    source: str | None
    targets: tuple[str, ...]
    value: float
    grad: float | None
    updated: float
    trainable: bool
    factors: tuple[tuple[float, float | None, float], ...]


@dataclass(frozen=True)
class LayerTrace:
    """A Dense layer with its activation: ``number`` counts Dense layers from 1, ``index`` is
    the Dense layer's position in ``net.layers``, ``sources`` the names of its inputs."""

    number: int
    index: int
    role: str
    activation: str
    sources: tuple[str, ...]
    neurons: tuple[Neuron, ...]
    weights: tuple[ParamTrace, ...]
    biases: tuple[ParamTrace, ...]


@dataclass(frozen=True)
class StepTrace:
    """One training step: inputs (per input name, one value per sample), layers, E before the
    update (``error``), after it (``error_after``) and after ``steps`` steps (``error_after_steps``)."""

    inputs: tuple[tuple[str, Values], ...]
    layers: tuple[LayerTrace, ...]
    loss: str
    lr: float
    n_samples: int
    error: float
    error_after: float
    steps: int
    error_after_steps: float
    backend: str
    dtype: str

    @property
    def parameters(self) -> tuple[ParamTrace, ...]:
        """Every weight and bias, layer by layer (weights in textbook order, then biases)."""
        return tuple(p for layer in self.layers for p in (*layer.weights, *layer.biases))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (len(self.inputs), *(len(layer.neurons) for layer in self.layers))

    def neuron(self, name: str) -> Neuron:
        """The neuron called ``name`` (``h1``, ``o2``, ...)."""
        for layer in self.layers:
            for neuron in layer.neurons:
                if neuron.name == name:
                    return neuron
        names = [n.name for layer in self.layers for n in layer.neurons]
        raise BpxValueError(f"no neuron called {name!r}; the record has {', '.join(names)}")

    def param(self, name: str) -> ParamTrace:
        """The weight or bias called ``name`` (``w5``, ``b1``, ...)."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise BpxValueError(f"no weight or bias called {name!r}; the record has "
                            f"{', '.join(p.name for p in self.parameters)}")


def check_size(sizes: list[int] | tuple[int, ...], n_samples: int = 1) -> None:
    """Raise :class:`BpxValueError` when a network of layer ``sizes`` (inputs first) or a batch of
    ``n_samples`` exceeds :data:`MAX_NEURONS`, :data:`MAX_WEIGHTS` or :data:`MAX_SAMPLES`."""
    n_weights = sum(a * b for a, b in itertools.pairwise(sizes))
    if max(sizes) > MAX_NEURONS or n_weights > MAX_WEIGHTS:
        raise BpxValueError(f"explain: the {'-'.join(map(str, sizes))} network is too large to print usefully "
                         f"({n_weights} weights, widest layer {max(sizes)} neurons); the limits are "
                         f"{MAX_NEURONS} neurons per layer and {MAX_WEIGHTS} weights")
    if n_samples > MAX_SAMPLES:
        raise BpxValueError(f"explain: {n_samples} samples are too many to print usefully; "
                         f"the limit is {MAX_SAMPLES}")


class _Recorder:
    """An observer of the passes: copies each layer's output and the gradient reaching it."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.outputs: dict[int, Any] = {}
        self.saved: dict[int, Any] = {}
        self.grads: dict[int, Any] = {}

    def forward(self, position: int, layer: Layer, x: Any, y: Any, saved: Any) -> None:
        self.outputs[position] = self.xp.asarray(y, copy=True)
        self.saved[position] = self.xp.asarray(saved, copy=True)

    def backward(self, position: int, layer: Layer, grad_y: Any) -> None:
        self.grads[position] = self.xp.asarray(grad_y, copy=True)  # backward may overwrite grad_y


def explain(net: Network, x: Any, targets: Any, loss: str | Loss, lr: float, *, steps: int = 1) -> StepTrace:
    """Record one SGD step (learning rate ``lr``) of ``net`` on inputs ``x`` and ``targets``.

    ``x`` is one sample ``(in,)`` or a batch ``(n, in)``; ``targets`` the matching targets (rows of
    ``out`` numbers, or class labels for softmax cross-entropy). ``net`` is not changed: the
    step runs on a copy. With ``steps > 1`` the copy then takes ``steps − 1`` more real training
    steps and the record's ``error_after_steps`` is E after all of them.
    Raises :class:`bpx.BpxValueError` for networks beyond the size limits (see :func:`check_size`)
    or layer stacks other than Dense layers each followed by at most one activation.
    """
    steps = check_int(steps, "explain steps")
    groups = _groups(net.layers)
    if any(net.layers.count(layer) > 1 for layer in net.layers):
        raise BpxValueError("explain shows networks whose layers are each used once; this one shares a layer")
    check_size([net.in_features, *(net.layers[d].out_features for d, _ in groups)])
    optimizer = SGD(lr)
    work = net.to(net.backend)
    xp = work.xp
    loss = work.resolve_loss(loss)
    x, targets = _batch(work, x, targets, loss)
    check_size([work.in_features], x.shape[0])

    params = work.parameters()
    before = {p: xp.asarray(p.value, copy=True) for p in params}
    recorder = _Recorder(xp)
    error = train_step(work, x, targets, loss, optimizer, observer=recorder).loss
    param_grads = {p: None if p.grad is None else xp.asarray(p.grad, copy=True) for p in params}
    updated = {p: xp.asarray(p.value, copy=True) for p in params}
    outputs, grads = recorder.outputs, recorder.grads
    h = outputs[len(work.layers) - 1]
    ctx = work.context(training=False)
    slopes = {a: work.layers[a].slope(recorder.saved[a], xp) for _, a in groups
              if a is not None and not isinstance(work.layers[a], Softmax)}
    terms = _error_terms(loss, h, targets, xp)
    target_rows = targets if targets.ndim == 2 else one_hot(targets, work.out_features, h.dtype, xp)
    error_after = loss.value(work.forward_pass(x, ctx, keep=False).outputs, targets, ctx)
    for _ in range(steps - 1):
        train_step(work, x, targets, loss, optimizer)
    error_after_steps = (loss.value(work.forward_pass(x, ctx, keep=False).outputs, targets, ctx) if steps > 1
                         else error_after)

    # Everything to host Python floats, once, at the end.
    inputs = _columns(_host(x))
    n = len(inputs[0])
    sources = input_trace = tuple((f"i{i + 1}", values) for i, values in enumerate(inputs))
    layers: list[LayerTrace] = []
    first_weight = 1
    for number, (d, a) in enumerate(groups, start=1):
        dense, last, o = work.layers[d], number == len(groups), d if a is None else a
        k = dense.out_features
        names = _neuron_names(number, len(groups), k)
        if a is None:
            slope: tuple[Values | None, ...] = ((1.0,) * n,) * k
        else:
            slope = _columns(_host(slopes[a])) if a in slopes else (None,) * k
        target = _columns(_host(target_rows)) if last else (None,) * k
        error_terms = _error_columns(terms, n, k) if last else (None,) * k
        neurons = tuple(
            Neuron(name, net_, out_, d_out, s, delta, tgt, err)
            for name, net_, out_, d_out, s, delta, tgt, err in zip(
                names, _columns(_host(outputs[d])), _columns(_host(outputs[o])), _columns(_host(grads[o])),
                slope, _columns(_host(grads[d])), target, error_terms, strict=True))
        activation = "identity" if a is None else _ACTIVATION_NAMES.get(type(work.layers[a]), "custom")
        weights = _weights(dense, d, neurons, sources, before, updated, param_grads, first_weight)
        layers.append(LayerTrace(number, d, "output" if last else "hidden", activation,
                                 tuple(name for name, _ in sources), neurons, weights,
                                 _biases(dense, d, number, neurons, before, updated, param_grads)))
        first_weight += len(weights)
        sources = tuple((nr.name, nr.out) for nr in neurons)
    return StepTrace(
        inputs=input_trace, layers=tuple(layers), loss=loss.name, lr=optimizer.lr, n_samples=n,
        error=_host(error), error_after=_host(error_after), steps=steps,
        error_after_steps=_host(error_after_steps), backend=net.backend.name, dtype=net.backend.dtype_name,
    )


# ---------------------------------------------------------------------- helpers
def _groups(layers: list[Layer]) -> list[tuple[int, int | None]]:
    """``(dense_index, activation_index or None)`` per Dense layer; rejects other stacks."""
    groups, k = [], 0
    while k < len(layers):
        if not isinstance(layers[k], Dense):
            raise BpxValueError(f"explain supports Dense layers each followed by at most one activation; "
                             f"layers[{k}] ({type(layers[k]).__name__}) does not follow a Dense layer")
        act = k + 1 if k + 1 < len(layers) and isinstance(layers[k + 1], Activation) else None
        groups.append((k, act))
        k = (k if act is None else act) + 1
    return groups


def _batch(net: Network, x: Any, t: Any, loss: Loss) -> tuple[Any, Any]:
    """Inputs ``(n, in)`` and prepared targets on the device; one sample may be given 1-D."""
    backend, xp = net.backend, net.xp
    x = backend.asarray(x, name="x")
    if x.ndim == 1:
        x = xp.reshape(x, (1, x.shape[0]))
        t = backend.asarray(t, name="targets")
        if t.ndim == 0 or (t.ndim == 1 and t.shape[0] != net.out_features):
            t = xp.reshape(t, (1,))
        elif t.ndim == 1:
            t = xp.reshape(t, (1, t.shape[0]))
    x = net.prepare_inputs(x)
    return x, loss.prepare_targets(t, backend, net.output_shape)


def _error_terms(loss: Loss, y: Any, t: Any, xp: Any) -> Any:
    """Per-sample, per-output terms of E as a flat ``(n*k,)`` array, or ``None`` when ``loss``
    does not split per output. Each term is the loss itself evaluated on one output of one sample."""
    scale = _ERROR_TERM_SCALE.get(type(loss))
    if scale is None:
        return None
    n, k = y.shape
    factor = scale(k)
    return xp.stack([loss.value(y[s:s + 1, j:j + 1], t[s:s + 1, j:j + 1]) * factor
                     for s in range(n) for j in range(k)])


def _host(a: Any) -> Any:
    """A device array as (nested) Python floats."""
    return to_host(a).tolist()


def _columns(rows: list[list[float]]) -> tuple[Values, ...]:
    """``(n, k)`` nested lists → k tuples of n values (one tuple per neuron)."""
    return tuple(tuple(row[j] for row in rows) for j in range(len(rows[0])))


def _error_columns(terms: Any, n: int, k: int) -> tuple[Values | None, ...]:
    if terms is None:
        return (None,) * k
    flat = _host(terms)
    return tuple(tuple(flat[s * k + j] for s in range(n)) for j in range(k))


def _neuron_names(number: int, n_layers: int, width: int) -> list[str]:
    if number == n_layers:
        return [f"o{j + 1}" for j in range(width)]
    prefix = "h" if n_layers == 2 else f"h{number}_"
    return [f"{prefix}{j + 1}" for j in range(width)]


def _chain(neuron: Neuron, s: int) -> tuple[float, float | None]:
    """The first two chain-rule factors of sample ``s``: (∂E/∂out, ∂out/∂net), or (δ, None) for softmax."""
    if neuron.slope is None:
        return neuron.delta[s], None
    return neuron.d_out[s], neuron.slope[s]


def _weights(dense: Dense, d: int, neurons: tuple[Neuron, ...], sources: tuple[tuple[str, Values], ...],
             before: dict[Parameter, Any], after: dict[Parameter, Any], grads: dict[Parameter, Any],
             first: int) -> tuple[ParamTrace, ...]:
    """The weights of ``dense`` in textbook order: by target neuron, then by input."""
    p = dense.weight
    values, updated = _host(before[p]), _host(after[p])
    grad = None if grads[p] is None else _host(grads[p])
    traces = []
    for j, neuron in enumerate(neurons):
        for i, (source, source_out) in enumerate(sources):
            factors = tuple((*_chain(neuron, s), source_out[s]) for s in range(len(neuron.net)))
            traces.append(ParamTrace(
                f"w{first + len(traces)}", f"layers[{d}].weight[{i}, {j}]", source, (neuron.name,),
                values[i][j], None if grad is None else grad[i][j], updated[i][j], p.trainable,
                factors if p.trainable else ()))
    return tuple(traces)


def _biases(dense: Dense, d: int, number: int, neurons: tuple[Neuron, ...], before: dict[Parameter, Any],
            after: dict[Parameter, Any], grads: dict[Parameter, Any]) -> tuple[ParamTrace, ...]:
    """One shared ``b<l>`` for a frozen bias with equal values, else ``b<l>_<j>`` per neuron."""
    p = dense.bias
    if p is None:
        return ()
    values, updated = _host(before[p]), _host(after[p])
    if not p.trainable and all(v == values[0] for v in values):
        return (ParamTrace(f"b{number}", f"layers[{d}].bias[:]", None, tuple(nr.name for nr in neurons),
                           values[0], None, updated[0], False, ()),)
    grad = None if grads[p] is None else _host(grads[p])
    return tuple(
        ParamTrace(f"b{number}_{j + 1}", f"layers[{d}].bias[{j}]", None, (neuron.name,), values[j],
                   None if grad is None else grad[j], updated[j], p.trainable,
                   tuple((*_chain(neuron, s), 1.0) for s in range(len(neuron.net))) if p.trainable else ())
        for j, neuron in enumerate(neurons))
