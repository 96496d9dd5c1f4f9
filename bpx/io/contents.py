"""What a bpx checkpoint holds, whatever its file format.

A checkpoint is a set of named host arrays (``layers.<i>.<name>`` for each parameter and buffer of
:meth:`bpx.nn.Network.state_dict`, ``optim/<param>/<key>`` for optimizer state) and a description
(format, version, dtype, architecture, seed, step and epoch counts, loss, metrics, optimizer).
:mod:`bpx.io.checkpoint` stores them in an ``.npz`` with a JSON header, :mod:`bpx.io.safetensors`
as tensors with string metadata; both use this module to collect them for writing and to rebuild
a network and its optimizer from an untrusted file. A format hands over a :class:`Source` (its
reader, whose ``error`` names the file), the names of its arrays, and a ``read(name, shape)`` that
returns a host array checked for shape and dtype; everything here raises ``source.error(...)``, a
:class:`CheckpointError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

from ..backend import Backend
from ..checks import check_float
from ..errors import BpxError, BpxTypeError, CheckpointError, NonFiniteError, StateError
from ..host.arrays import check_representable, element_count, is_finite_host, to_host
from ..nn.layer import layer_from_config
from ..nn.losses import LOSSES, METRICS, Loss
from ..nn.network import Network
from ..optim.optimizers import OPTIMIZERS, Optimizer
from ..version import __version__

FORMAT = "bpx-checkpoint"
VERSION = 2
#: Name prefix of the optimizer state arrays.
OPTIM = "optim/"
#: Layer arguments that carry parameter values: never part of a checkpoint's architecture.
EXPLICIT_VALUES = ("weight", "bias")
#: What building from an untrusted description may raise besides bpx's own errors.
CONFIG_ERRORS = (BpxError, TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError)
OPTIMIZER_CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}

N = TypeVar("N", bound=Network)
#: ``read(name, shape)``: the file's array ``name``, checked to have ``shape`` and a float dtype.
Read = Callable[[str, tuple[int, ...]], np.ndarray]


class Source(Protocol):
    """A checkpoint file being read; its errors name it."""

    def error(self, problem: str) -> CheckpointError: ...


# ---------------------------------------------------------------------- collect (save)
def collect(net: Network, optimizer: Optimizer | None, what: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, description)`` of ``net`` (and ``optimizer``): arrays little-endian, C-contiguous, in
    the master dtype; the description JSON data. Raises :class:`NonFiniteError` for non-finite
    values and :class:`StateError` for an optimizer that is not bpx's or holds another network's
    state (``what`` starts each message)."""
    net.store.check_finite(what)
    state = net.state_dict()
    for name in net.named_buffers():
        if not is_finite_host(state[name]):
            raise NonFiniteError(f"{what}: buffer {name!r} holds NaN or inf")
    dtype = net.backend.master_dtype_name
    arrays = {name: little_endian(value, dtype) for name, value in state.items()}
    loss = net.loss
    own_loss = loss is not None and LOSSES.get(loss.name) is type(loss)
    description: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "bpx_version": __version__, "dtype": dtype,
        "backend": {"name": net.backend.name, "device": str(net.backend.device)},
        "config": net.config(), "seed": net.seed, "step_count": net.step_count,
        "epochs_trained": net.epochs_trained,
        "loss": {"name": loss.name, "config": loss.config()} if own_loss else None,  # type: ignore[union-attr]
        "metrics": net.metrics, "optimizer": None,
    }
    if optimizer is not None:
        description["optimizer"] = _collect_optimizer(net, optimizer, arrays, dtype, what)
    return arrays, description


def little_endian(host: np.ndarray, dtype: str) -> np.ndarray:
    """``host`` as a C-contiguous little-endian array of ``dtype``."""
    return np.ascontiguousarray(host, dtype=np.dtype(dtype).newbyteorder("<"))


def json_text(value: Any, what: str) -> str:
    """``value`` as strict JSON (no NaN); :class:`BpxTypeError` when it is not JSON data."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise BpxTypeError(f"{what}: its configuration is not JSON data ({err})") from None


def _collect_optimizer(net: Network, optimizer: Optimizer, arrays: dict[str, np.ndarray], dtype: str,
                       what: str) -> dict[str, Any]:
    """The optimizer's description; its state arrays are added to ``arrays``."""
    cls = type(optimizer)
    if OPTIMIZER_CLASSES.get(cls.__name__) is not cls:
        raise StateError(f"{what}: only bpx's own optimizers ({', '.join(OPTIMIZER_CLASSES)}) can be saved, "
                         f"not {optimizer!r}")
    if optimizer.state and not optimizer.is_bound_to(net.store):
        raise StateError(f"{what}: the optimizer holds the state of another network")
    names = {p: name for name, p in net.named_parameters().items()}
    listing: dict[str, list[str]] = {}
    for p, values in optimizer.parameter_state(net.store).items():
        listing[names[p]] = list(values)
        for key, value in values.items():
            host = to_host(value)
            if not is_finite_host(host):
                raise NonFiniteError(f"{what}: the optimizer's {key!r} of parameter {names[p]!r} holds NaN or inf")
            arrays[f"{OPTIM}{names[p]}/{key}"] = little_endian(host, dtype)
    return {"class": cls.__name__, "hyperparameters": optimizer.hyperparameters(),
            "base_lr": optimizer.base_lr, "iterations": optimizer.iterations, "state": listing}


# ---------------------------------------------------------------------- restore (load)
def declared_values(source: Source, config: dict[str, Any], where: str) -> int:
    """How many values the parameters and buffers of architecture ``config`` need, counted from its
    layer specs without building the network (a layer's constructor allocates nothing but explicit
    values, which a checkpoint never holds), so a format can refuse a file too small for them
    before anything is allocated. ``where`` names the description in messages (``"the header"``)."""
    specs = config.get("layers")
    if not isinstance(specs, list) or not specs:
        raise source.error(f"invalid architecture in {where}: 'layers' is {short(specs)}, not a list of layers")
    declared = 0
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise source.error(f"invalid architecture in {where}: layers[{i}] is {short(spec)}, not an object")
        if "same_as" in spec:
            continue
        explicit = [key for key in EXPLICIT_VALUES if spec.get(key) is not None]
        if explicit:
            raise source.error(f"invalid architecture in {where}: layers[{i}] holds explicit "
                               f"{' and '.join(explicit)} values (a checkpoint's weights are arrays, never part of "
                               "its architecture)")
        try:
            layer = layer_from_config(spec.get("type"), {k: v for k, v in spec.items() if k != "type"})
        except CONFIG_ERRORS as err:
            raise source.error(f"invalid architecture in {where}: layers[{i}]: {err}") from None
        declared += sum(element_count(item.shape) for item in [*layer.parameters(), *layer.buffers()])
    return declared


def build_network(source: Source, config: dict[str, Any], description: dict[str, Any] | None, target: Backend,
                  network_class: type[N], where: str) -> N:
    """``network_class`` built from architecture ``config`` on ``target``, with the description's
    seed, counts, loss and metrics (``description`` is ``None`` for a file without one); its
    weights are those of a fresh network until :func:`load_arrays`."""
    description = description or {}
    loss = restore_loss(source, description.get("loss"), where)
    try:
        net = network_class.from_config(config, backend=target, seed=description.get("seed", 0))
    except CONFIG_ERRORS as err:
        raise source.error(f"invalid architecture in {where} ({type(err).__name__}: {err})") from None
    net.loss, net.metrics = loss, description.get("metrics")
    net.step_count = description.get("step_count", 0)
    net.epochs_trained = description.get("epochs_trained", 0)
    return net


def load_arrays(source: Source, read: Read, names: set[str], net: Network, has_optimizer: bool, where: str) -> None:
    """Load ``net``'s parameters and buffers from the file, whose arrays are ``names``: exactly
    those of ``net.state_dict()``, plus optimizer state only when ``has_optimizer``."""
    shapes = {name: p.shape for name, p in net.named_parameters().items()}
    shapes.update({name: b.shape for name, b in net.named_buffers().items()})
    check_names(source, "arrays do not match the architecture", set(shapes),
                {n for n in names if not n.startswith(OPTIM)})
    if not has_optimizer and any(n.startswith(OPTIM) for n in names):
        raise source.error(f"it holds optimizer state arrays but {where} has no optimizer")
    state = {name: checked_values(source, read, name, shape, net.backend) for name, shape in shapes.items()}
    try:
        net.load_state_dict(state)
    except BpxError as err:  # pragma: no cover - the arrays were checked above
        raise source.error(str(err)) from None


def restore_optimizer(source: Source, read: Read, names: set[str], spec: dict[str, Any] | None, net: Network,
                      where: str) -> Optimizer:
    """The optimizer described by ``spec`` (checked by :func:`is_optimizer`), with its state loaded
    for ``net``: training continues exactly where it stopped."""
    if spec is None:
        raise source.error("it holds no optimizer (saved without one); load it with with_optimizer=False")
    cls = OPTIMIZER_CLASSES.get(spec["class"])
    if cls is None:
        raise source.error(f"invalid optimizer in {where}: unknown class {short(spec['class'])} "
                           f"(known: {', '.join(OPTIMIZER_CLASSES)})")
    try:
        optimizer = cls(**spec["hyperparameters"])
    except CONFIG_ERRORS as err:
        raise source.error(f"invalid optimizer in {where} ({type(err).__name__}: {err})") from None
    iterations, listing = spec["iterations"], spec["state"]
    params = net.named_parameters()
    trainable = {name for name, p in params.items() if p.trainable}
    unknown = sorted(listing.keys() - params.keys())
    if unknown:
        raise source.error(f"optimizer state for parameters the network does not have: {unknown[:10]}")
    frozen = sorted(listing.keys() - trainable)
    if frozen:
        raise source.error(f"optimizer state for frozen parameters: {frozen[:10]}")
    keys = sorted(optimizer.keys())
    if keys and listing.keys() != trainable and (listing or iterations > 0):
        raise source.error(f"the optimizer state covers {sorted(listing)[:10]} but the trainable parameters are "
                           f"{sorted(trainable)[:10]}")
    for pname, saved_keys in listing.items():
        if sorted(saved_keys) != keys:
            raise source.error(f"optimizer state of {pname} has {sorted(saved_keys)}, but {cls.__name__} with these "
                               f"hyperparameters keeps {keys}")
    expected = {f"{OPTIM}{pname}/{key}" for pname, saved_keys in listing.items() for key in saved_keys}
    check_names(source, f"optimizer state arrays do not match {where}", expected,
                {n for n in names if n.startswith(OPTIM)})
    values = {params[pname]: {key: checked_values(source, read, f"{OPTIM}{pname}/{key}", params[pname].shape,
                                                  net.backend)
                              for key in saved_keys}
              for pname, saved_keys in listing.items()}
    optimizer.load_parameter_state(net.store, values, iterations)
    try:
        optimizer.base_lr = check_float(spec.get("base_lr", optimizer.lr), "the optimizer's base_lr", 0.0,
                                        low_open=True)
    except BpxError as err:
        raise source.error(f"invalid optimizer in {where} ({err})") from None
    return optimizer


def restore_loss(source: Source, spec: dict[str, Any] | None, where: str) -> Loss | None:
    """The loss described by ``spec`` (checked by :func:`is_loss`), or ``None``."""
    if spec is None:
        return None
    cls = LOSSES.get(spec["name"])
    if cls is None:
        raise source.error(f"unknown loss {short(spec['name'])} in {where}; known: {', '.join(LOSSES)}")
    try:
        return cls(**spec.get("config", {}))
    except CONFIG_ERRORS as err:
        raise source.error(f"invalid loss in {where} ({type(err).__name__}: {err})") from None


def checked_values(source: Source, read: Read, name: str, shape: tuple[int, ...], target: Backend) -> np.ndarray:
    """Array ``name``: of ``shape``, finite, and representable in ``target``'s master dtype."""
    array = read(name, shape)
    if not is_finite_host(array):
        raise source.error(f"array {name!r} holds NaN or inf")
    try:
        check_representable(array, target.master_dtype_name, f"array {name!r}")
    except BpxError as err:
        raise source.error(str(err)) from None
    return array


def check_names(source: Source, what: str, expected: set[str], present: set[str]) -> None:
    """Raise unless ``present`` is exactly ``expected`` (the first ten of each difference named)."""
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing or extra:
        raise source.error(f"{what}: missing {missing[:10]}, unexpected {[n[:80] for n in extra[:10]]}")


# ---------------------------------------------------------------------- description checks
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_count(v: Any) -> bool:
    """A non-negative int below 2**63."""
    return is_int(v) and 0 <= v < 2**63


def is_names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(m, str) for m in v)


def is_metrics(v: Any) -> bool:
    return v is None or (is_names(v) and all(name in METRICS for name in v))


def is_loss(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("name"), str)
                         and isinstance(v.get("config", {}), dict))


def is_optimizer(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and isinstance(v.get("class"), str)
                         and isinstance(v.get("hyperparameters"), dict) and is_count(v.get("iterations"))
                         and isinstance(v.get("state"), dict) and all(is_names(k) for k in v["state"].values()))


#: The description's typed fields: ``(key, check, what it must be)``.
FIELD_CHECKS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("seed", is_count, "a non-negative int below 2**63"),
    ("step_count", is_count, "a non-negative int below 2**63"),
    ("epochs_trained", is_count, "a non-negative int below 2**63"),
    ("metrics", is_metrics, "null or a list of metric names"),
    ("loss", is_loss, "null or a loss description"),
    ("optimizer", is_optimizer, "null or an optimizer description"),
)


def short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (untrusted values can be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
