"""JSON specs for ``bpx explain`` (a small network, one batch, loss and learning rate); the
command itself is :mod:`bpx.cli.explain`.

A spec is a JSON object (full description in ``docs/backprop.md``, example in
``examples/explain_spec.json``)::

    {"layers": [2, 2, 2],                      # input width, then each Dense layer's width
     "activation": "sigmoid",                  # one name, or one per Dense layer ("identity": none)
     "weights": [[0.15, 0.20, 0.25, 0.30],     # per Dense layer, in textbook order: the weights
                 [0.40, 0.45, 0.50, 0.55]],    #   into neuron 1 (one per input), then neuron 2, ...
     "biases": [0.35, 0.60],                   # per layer: one number (every neuron) or a list
     "train_biases": false,                    # one bool, or one per layer
     "inputs": [0.05, 0.10],                   # one sample, or a list of samples
     "targets": [0.01, 0.99],                  # matching targets
     "loss": "half_squared_error", "lr": 0.5, "dtype": "float64", "backend": "numpy"}

Only ``layers``, ``weights``, ``inputs`` and ``targets`` are required; ``description`` holds free
text. Every error is a :class:`SpecError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..architectures import textbook_matrix
from ..backend import NAMES as BACKEND_NAMES
from ..errors import SpecError
from ..nn.activations import ACTIVATIONS
from ..nn.dense import Dense
from ..nn.layer import Layer
from ..nn.losses import get_loss
from ..sequential import Sequential

#: The classic 2-2-2 worked example, the default of ``bpx explain``.
WORKED_EXAMPLE: dict[str, Any] = {
    "layers": [2, 2, 2], "activation": "sigmoid",
    "weights": [[0.15, 0.20, 0.25, 0.30], [0.40, 0.45, 0.50, 0.55]],
    "biases": [0.35, 0.60], "train_biases": False,
    "inputs": [0.05, 0.10], "targets": [0.01, 0.99],
    "loss": "half_squared_error", "lr": 0.5, "dtype": "float64",
}

REQUIRED = ("layers", "weights", "inputs", "targets")
OPTIONAL = ("activation", "biases", "train_biases", "loss", "lr", "dtype", "backend", "description")
ACTIVATION_NAMES = ("identity", *(name for name in ACTIVATIONS if name != "identity"))


@dataclass(frozen=True)
class ExplainSpec:
    """A validated spec. ``weights[l]`` is layer l's flat textbook-order list; ``biases[l]`` has
    one value per neuron; ``inputs``/``targets`` are lists of samples (rows)."""

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]
    biases: tuple[tuple[float, ...], ...]
    train_biases: tuple[bool, ...]
    inputs: tuple[tuple[float, ...], ...]
    targets: tuple[tuple[float, ...], ...]
    loss: str
    lr: float
    dtype: str
    backend: str | None

    def network(self, backend: str | None = None, device: Any = None) -> Sequential:
        """The spec's network; ``backend`` overrides the spec's own (then ``$BPX_BACKEND``, numpy)."""
        layers: list[Layer] = []
        for n_in, n_out, w, b, train, act in zip(self.sizes[:-1], self.sizes[1:], self.weights, self.biases,
                                                 self.train_biases, self.activations, strict=True):
            layers.append(Dense(n_in, n_out, weight=textbook_matrix(w, n_in, n_out), bias=list(b),
                                train_bias=train))
            if act != "identity":
                layers.append(ACTIVATIONS[act]())
        return Sequential(*layers, backend=backend or self.backend, device=device, dtype=self.dtype)


def load_spec(path: str | Path) -> ExplainSpec:
    """Read and validate a JSON spec file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"{path}: cannot read the spec: {err.strerror or err}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise SpecError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except ValueError as err:
        raise SpecError(f"{path}: {err}") from None
    return parse_spec(data, str(path))


def parse_spec(data: Any, source: str = "spec") -> ExplainSpec:
    """Validate spec ``data`` (parsed JSON); errors name ``source`` and the field."""
    def fail(field: str, message: str) -> SpecError:
        return SpecError(f"{source}: field {field!r}: {message}")

    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a JSON object, got {type(data).__name__}")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise SpecError(f"{source}: missing required field(s) {', '.join(map(repr, missing))}")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise SpecError(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}; "
                        f"valid fields: {', '.join(REQUIRED + OPTIONAL)}")

    sizes = data["layers"]
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(_is_int(n) and n >= 1 for n in sizes):
        raise fail("layers", f"expected a list of at least two positive ints (input width, then each layer's "
                             f"width), got {sizes!r}")
    n_layers = len(sizes) - 1
    activations = _per_layer(data.get("activation", "sigmoid"), n_layers, "activation", fail, str)
    for i, act in enumerate(activations):
        if act not in ACTIVATION_NAMES:
            raise fail(f"activation[{i}]" if isinstance(data.get("activation"), list) else "activation",
                       f"unknown activation {act!r}; valid: {', '.join(ACTIVATION_NAMES)}")

    weights = data["weights"]
    if not isinstance(weights, list) or len(weights) != n_layers:
        raise fail("weights", f"expected a list of {n_layers} lists (one per layer), got {_short(weights)}")
    flat = []
    for i, (row, n_in, n_out) in enumerate(zip(weights, sizes[:-1], sizes[1:], strict=True)):
        if not isinstance(row, list) or len(row) != n_in * n_out:
            raise fail(f"weights[{i}]", f"expected {n_in * n_out} numbers ({n_in} inputs x {n_out} neurons, "
                                        f"textbook order), got {_short(row)}")
        flat.append(tuple(_number(v, f"weights[{i}][{k}]", fail) for k, v in enumerate(row)))

    biases_in = data.get("biases", 0.0)
    biases_in = [biases_in] * n_layers if not isinstance(biases_in, list) else biases_in
    if len(biases_in) != n_layers:
        raise fail("biases", f"expected one entry per layer ({n_layers}), got {len(biases_in)}")
    biases = []
    for i, (b, n_out) in enumerate(zip(biases_in, sizes[1:], strict=True)):
        if isinstance(b, list):
            if len(b) != n_out:
                raise fail(f"biases[{i}]", f"expected {n_out} numbers (one per neuron) or one number, got {len(b)}")
            biases.append(tuple(_number(v, f"biases[{i}][{k}]", fail) for k, v in enumerate(b)))
        else:
            biases.append((_number(b, f"biases[{i}]", fail),) * n_out)
    train = _per_layer(data.get("train_biases", True), n_layers, "train_biases", fail, bool)

    inputs = _samples(data["inputs"], sizes[0], "inputs", fail)
    targets = _samples(data["targets"], sizes[-1], "targets", fail)
    if len(inputs) != len(targets):
        raise fail("targets", f"{len(targets)} target rows for {len(inputs)} input samples")

    loss = data.get("loss", "half_squared_error")
    if not isinstance(loss, str):
        raise fail("loss", f"expected a loss name, got {_short(loss)}")
    try:
        loss = get_loss(loss).name
    except ValueError as err:
        raise fail("loss", str(err)) from None
    lr = _number(data.get("lr", 0.5), "lr", fail)
    if lr <= 0:
        raise fail("lr", f"must be positive, got {lr}")
    dtype = data.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        raise fail("dtype", f"expected 'float32' or 'float64', got {dtype!r}")
    backend = data.get("backend")
    if backend is not None and backend not in BACKEND_NAMES:
        raise fail("backend", f"unknown backend {backend!r}; valid: {', '.join(BACKEND_NAMES)}")
    if not isinstance(data.get("description", ""), str):
        raise fail("description", "expected a string")
    return ExplainSpec(tuple(sizes), activations, tuple(flat), tuple(biases), train, inputs, targets,
                       loss, lr, dtype, backend)


def _reject_constant(name: str) -> Any:
    raise SpecError(f"{name} is not a finite number")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(v: Any, field: str, fail: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise fail(field, f"expected a finite number, got {_short(v)}")
    return float(v)


def _per_layer(value: Any, n: int, field: str, fail: Any, kind: type) -> tuple[Any, ...]:
    values = value if isinstance(value, list) else [value] * n
    if len(values) != n:
        raise fail(field, f"expected one value or a list of {n} (one per layer), got {len(values)}")
    for i, v in enumerate(values):
        if not isinstance(v, kind):
            where = f"{field}[{i}]" if isinstance(value, list) else field
            raise fail(where, f"expected a {kind.__name__}, got {_short(v)}")
    return tuple(values)


def _samples(value: Any, width: int, field: str, fail: Any) -> tuple[tuple[float, ...], ...]:
    rows = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
    out = []
    for s, row in enumerate(rows):
        where = field if rows is not value else f"{field}[{s}]"
        if not isinstance(row, list) or len(row) != width:
            raise fail(where, f"expected {width} numbers per sample, got {_short(row)}")
        out.append(tuple(_number(v, f"{where}[{k}]", fail) for k, v in enumerate(row)))
    return tuple(out)
