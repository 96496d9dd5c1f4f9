"""Bad values injected at random into every argument of the public API (issue #11 C).

The property: a call either raises a :class:`bpx.BpxError` whose message names the offending
argument, or — where the value is in fact valid (big-endian or negative-stride NumPy data,
integer inputs, a PyTorch tensor that requires grad, ...) — succeeds with finite results. No
other exception ever escapes (IndexError, KeyError, ZeroDivisionError, AttributeError, a
library's own TypeError, ...), and nothing is silently broadcast, clipped or NaN.

Device-resident data is validated once per ``fit``/``evaluate`` (one read-back); ``predict``,
``forward`` and ``train_step`` do not read device data back, so non-finite device values may give
non-finite outputs there (documented; see the README's "Inputs").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_places import budget, place_params

import bpx


class Opaque:
    """An object of no type bpx knows."""

    def __repr__(self) -> str:
        return "Opaque()"


#: Values that are wrong for almost every argument (a few are right for some: then they must work).
JUNK: list[Any] = [None, "abc", "", b"x", 1.5, -1, 0, True, [], {}, Opaque(), float("nan"), float("inf"),
                   -float("inf"), 1j, [1, "a"], np.array(["a"]), np.float64("nan"), 10**30, -(10**30), (1, 2),
                   np.array([1.0, 2.0]), np.int64(-3), 1e300, -1e-300, "cosine", "sgd", [None], {"a": 1}]


def names_argument(err: BaseException, *names: str) -> bool:
    text = str(err)
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])", text) for name in names)


def outcome(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """``(result, None)`` or ``(None, the bpx error)``; any other exception fails the test."""
    try:
        return fn(), None
    except bpx.BpxError as err:
        return None, err
    except Exception as err:  # the property: nothing but bpx errors
        raise AssertionError(f"a non-bpx {type(err).__name__} escaped: {err}") from err


def finite_tree(value: Any) -> bool:
    """True when every number in a result (array, dict, History, float) is finite."""
    if isinstance(value, bpx.History):
        return all(finite_tree(v) for v in value.metrics.values()) and finite_tree(value.batch_losses)
    if isinstance(value, dict):
        return all(finite_tree(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(finite_tree(v) for v in value)
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    host = bpx.to_host(value)
    return host.dtype.kind != "f" or bool(np.all(np.isfinite(host)))


# ---------------------------------------------------------------------- constructors
@dataclass(frozen=True)
class Ctor:
    """A public constructor or factory, its valid keyword arguments and the names its messages use."""

    fn: Callable[..., Any]
    valid: dict[str, Any]
    label: str


CTORS = [
    Ctor(lambda **kw: bpx.Dense(kw.pop("in_features"), kw.pop("out_features"), **kw),
         {"in_features": 3, "out_features": 2, "weight": None, "bias": None, "init": "glorot_uniform",
          "use_bias": True, "train_weight": True, "train_bias": True}, "Dense"),
    Ctor(bpx.SGD, {"lr": 0.1, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0}, "SGD"),
    Ctor(bpx.Adam, {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}, "Adam"),
    Ctor(bpx.AdamW, {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}, "AdamW"),
    Ctor(bpx.StepLR, {"step_size": 2, "gamma": 0.5}, "StepLR"),
    Ctor(bpx.CosineLR, {"epochs": 3, "min_lr": 0.0}, "CosineLR"),
    Ctor(bpx.LeakyReLU, {"negative_slope": 0.1}, "LeakyReLU"),
    Ctor(bpx.EarlyStopping, {"monitor": "loss", "patience": 1, "min_delta": 0.0, "mode": "auto",
                             "restore_best": True}, "EarlyStopping"),
    Ctor(bpx.ModelCheckpoint, {"path": "model-{epoch}.npz", "monitor": "loss", "save_best_only": False,
                               "mode": "auto"}, "ModelCheckpoint"),
    Ctor(lambda **kw: bpx.mlp(**kw), {"sizes": [3, 4, 2], "activation": "relu", "output_activation": None,
                                      "dropout": 0.0, "batch_norm": False, "input_dropout": 0.0}, "mlp"),
    Ctor(lambda **kw: bpx.Sequential(bpx.Dense(3, 2), **kw),
         {"backend": "numpy", "device": None, "dtype": "float32", "seed": 0, "input_shape": None}, "Sequential"),
    Ctor(lambda **kw: bpx.get_loss(**kw), {"loss": "mse"}, "get_loss"),
    Ctor(lambda **kw: bpx.get_optimizer(**kw), {"optimizer": "sgd"}, "get_optimizer"),
]


def exercise(obj: Any, label: str, tmp: str) -> Any:
    """Use what a constructor accepted, so that a value it let through must also work."""
    net = bpx.Sequential(bpx.Dense(3, 2), seed=0, dtype="float64")
    x, t = np.linspace(-1, 1, 12).reshape(4, 3), [0, 1, 1, 0]
    if isinstance(obj, bpx.Optimizer):
        return net.fit(x, t, loss="ce", optimizer=obj, epochs=2, verbose=0)
    if isinstance(obj, bpx.Schedule):
        return net.fit(x, t, loss="ce", optimizer=bpx.SGD(0.1), epochs=4, verbose=0, lr_schedule=obj)
    if isinstance(obj, bpx.ModelCheckpoint):
        obj.path = f"{tmp}/{obj.path}"
        return net.fit(x, t, loss="ce", optimizer="sgd", epochs=2, verbose=0, callbacks=[obj])
    if isinstance(obj, bpx.Callback):
        return net.fit(x, t, loss="ce", optimizer="sgd", epochs=2, verbose=0, callbacks=[obj])
    if isinstance(obj, bpx.Sequential):
        return obj.predict(np.ones((2, *obj.input_shape)))
    if isinstance(obj, bpx.Layer):
        layers = [bpx.Dense(3, 3), obj] if not isinstance(obj, bpx.Dense) else [obj]
        return bpx.Sequential(*layers, seed=0).predict(x)
    return obj


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # e.g. AdamW(lr=1e300): fit stops
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(CTORS) - 1), data=st.data())
def test_constructors_raise_bpx_errors_naming_the_argument(tmp_path_factory, index, data):
    ctor = CTORS[index]
    arg = data.draw(st.sampled_from(sorted(ctor.valid)), label="argument")
    value = data.draw(st.sampled_from(JUNK), label="value")
    kwargs = {**ctor.valid, arg: value}
    obj, err = outcome(lambda: ctor.fn(**kwargs))
    if err is not None:
        assert names_argument(err, arg, *ALIASES.get(arg, ())), f"{ctor.label}({arg}={value!r}): {err}"
        return
    # accepted: it must work and give finite results
    result, err = outcome(lambda: exercise(obj, ctor.label, str(tmp_path_factory.getbasetemp())))
    if isinstance(err, bpx.NonFiniteError):  # e.g. SGD(weight_decay=1e300): fit stops, the weights stay finite
        return
    assert err is None or names_argument(err, arg, *ALIASES.get(arg, ())), (
        f"{ctor.label}({arg}={value!r}) was accepted but then failed: {err!r}")
    assert finite_tree(result)


#: Other words a message may use for an argument (the value's role rather than its name).
ALIASES = {"sizes": ("mlp",), "loss": ("loss",), "path": ("ModelCheckpoint", "checkpoint"),
           "weight": ("weight", "layers.0.weight"), "bias": ("bias",), "backend": ("backend",),
           "device": ("device",), "init": ("init", "initialiser"), "in_features": ("shape",),
           "out_features": ("shape",)}


# ---------------------------------------------------------------------- Sequential's methods
LOSSES = ("half_squared_error", "mean_squared_error", "softmax_cross_entropy", "binary_cross_entropy")


@dataclass
class Case:
    """One call of a Sequential method with one argument replaced. ``expect``: ``"error"`` (a bpx
    error naming ``names`` is required), ``"ok"`` (must succeed with finite results), ``"either"``
    (bpx error or finite success) or ``"device"`` (non-finite device data: fit/evaluate must raise,
    the others may return non-finite values)."""

    value: Any
    expect: str
    names: tuple[str, ...]


def valid_targets(loss: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    if loss == "softmax_cross_entropy":
        return rng.integers(0, k, size=n)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, k)).astype(np.float64)
    return rng.normal(size=(n, k))


def foreign_array(place: tuple[str, Any], host: np.ndarray) -> Any:
    """The same values as an array of another library or device than ``place``'s (None if none)."""
    if place[0] == "array_api_strict":
        import array_api_strict as xp

        other = xp.Device("CPU_DEVICE") if place[1] == "device1" else xp.Device("device1")
        return xp.asarray(host, device=other)
    if place[0] != "torch":
        torch = pytest.importorskip("torch")
        return torch.asarray(host)
    import array_api_strict as xp

    return xp.asarray(host)


def with_nonfinite(host: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bad = np.array(host, dtype=np.float64, copy=True)
    index = tuple(int(rng.integers(0, d)) for d in bad.shape)
    bad[index] = rng.choice([np.nan, np.inf, -np.inf])
    return bad


def array_cases(kind: str, host: np.ndarray, place: tuple[str, Any], net: bpx.Sequential, loss: str,
                rng: np.random.Generator) -> dict[str, Case]:
    """Mutations of a valid host array ``host`` playing the role ``kind`` (x or targets)."""
    name = "x" if kind == "x" else "targets"
    be = net.backend
    big_endian = host.astype(host.dtype.newbyteorder(">"))
    reversed_view = np.ascontiguousarray(host[::-1])[::-1]
    cases = {
        "big_endian": Case(big_endian, "ok", ()),
        "negative_stride": Case(reversed_view, "ok", ()),
        "list": Case(host.tolist(), "ok", ()),
        "device": Case(be.asarray(host, name="setup"), "ok", ()),
        "nonfinite": Case(with_nonfinite(host, rng), "error", (name,)),
        "device_nonfinite": Case(be.asarray(with_nonfinite(host, rng), name="setup"), "device", (name,)),
        "complex": Case(host.astype(np.complex128), "error", (name,)),
        "strings": Case(host.astype(str), "error", (name,)),
        "objects": Case(host.astype(object), "error", (name,)),
        "none": Case(None, "error", (name,)),
        "dict": Case({"x": host}, "error", (name,)),
        "opaque": Case(Opaque(), "error", (name,)),
        "ragged": Case([list(r) for r in host[:1]] + [[1.0]] if host.ndim == 2 else [[1.0], [1.0, 2.0]], "error",
                       (name,)),
        "foreign": Case(foreign_array(place, host), "error", (name,)),
        "scalar": Case(1.0, "error", (name,)),
        "extra_axis": Case(host[..., None], "error", (name,)),
        "fewer_samples": Case(host[:-1], "error", ("samples", name)),
        "empty": Case(host[:0], "error", ("samples", name)),
    }
    if host.ndim == 2:
        cases["wrong_width"] = Case(np.concatenate([host, host[:, :1]], axis=1), "error", (name,))
        cases["flat"] = Case(host.reshape(-1), "error", (name,))
    if be.dtype_name == "float32" and host.dtype.kind == "f":
        cases["overflows_float32"] = Case(np.where(host == host.flat[0], 1e39, host), "error", (name,))
    if kind == "x":
        cases["int"] = Case(np.round(host * 3).astype(np.int32), "ok", ())
        cases["bool"] = Case(host > 0, "ok", ())
        cases["float32"] = Case(host.astype(np.float32), "ok", ())
        if place[0] == "torch":
            import torch

            cases["requires_grad"] = Case(torch.tensor(host, requires_grad=True), "ok", ())
    elif loss == "softmax_cross_entropy":
        k = net.output_shape[0]
        cases["label_too_big"] = Case(np.where(np.arange(len(host)) == 0, k, host), "error", ("targets",))
        cases["label_negative"] = Case(np.where(np.arange(len(host)) == 0, -1, host), "error", ("targets",))
        cases["device_label_out_of_range"] = Case(be.asarray(np.where(np.arange(len(host)) == 0, k, host),
                                                              name="setup"), "device", ("targets",))
        cases["float_labels"] = Case(host.astype(np.float64), "error", ("targets",))
        cases["bool_labels"] = Case(host > 0, "error", ("targets",))
        cases["one_hot_ints"] = Case(np.eye(k, dtype=np.int64)[host], "ok", ())
        cases["negative_rows"] = Case(np.eye(k)[host] - 0.5, "error", ("targets",))
    else:
        cases["booleans"] = Case(host > 0.5, "error", ("targets",))
        cases["int"] = Case(np.round(host).astype(np.int64).clip(0, 1), "ok", ())
        if loss == "binary_cross_entropy":
            cases["above_one"] = Case(host + 1.5, "error", ("targets",))
            cases["device_above_one"] = Case(be.asarray(host + 1.5, name="setup"), "device", ("targets",))
            cases["probabilities"] = Case(host * 0.5 + 0.25, "ok", ())
    return cases


SCALARS: dict[str, list[Any]] = {
    "epochs": [1, 2, np.int64(2), *(v for v in JUNK if not (isinstance(v, int) and v > 10))],  # no 10**30 epochs
    "batch_size": [1, 2, 10**9, np.int32(3), *JUNK],
    "seed": [None, 0, 2**40, np.int64(5), *JUNK],
    "shuffle": [True, False, *JUNK],
    "verbose": [0, False, *JUNK],
    "check_every": [None, 1, 3, *JUNK],
    "compile": [False, *JUNK],
    "metrics": [None, [], ["accuracy"], ("accuracy",), ["accuracy", "accuracy"], ["loss"], "accuracy", *JUNK],
    "loss": [*LOSSES, "MSE", "bce", bpx.MeanSquaredError, bpx.HalfSquaredError(), *JUNK],
    "optimizer": ["sgd", "adam", bpx.Adam(), bpx.SGD, *JUNK],
    "callbacks": [(), [bpx.EarlyStopping(monitor="loss")], bpx.EarlyStopping(monitor="loss"),
                  [bpx.EarlyStopping()], [bpx.EarlyStopping(monitor="accurcy")], [None], *JUNK],
    "lr_schedule": [None, bpx.CosineLR(2), bpx.StepLR(1), bpx.CosineLR, *JUNK],
    "validation_data": [None, *JUNK],
    "training": [True, False, *JUNK],
}

#: The words a bpx error may use for each argument.
NAMES = {"loss": ("loss", "Loss", "logits", "targets", "accuracy"), "optimizer": ("optimizer",),
         "metrics": ("metric", "metrics", "accuracy"), "callbacks": ("callbacks", "monitor"),
         "validation_data": ("validation_data", "validation"), "lr_schedule": ("lr_schedule",),
         "compile": ("compile",), "verbose": ("verbose",)}

METHODS = {
    "fit": ("x", "targets", "loss", "optimizer", "epochs", "batch_size", "validation_data", "shuffle", "seed",
            "callbacks", "lr_schedule", "check_every", "verbose", "compile", "metrics"),
    "evaluate": ("x", "targets", "loss", "batch_size", "metrics"),
    "train_step": ("x", "targets", "loss", "optimizer"),
    "compute_loss": ("x", "targets", "loss"),
    "predict": ("x", "batch_size"),
    "predict_classes": ("x", "batch_size"),
    "forward": ("x", "training"),
}


def call(net: bpx.Sequential, method: str, args: dict[str, Any]) -> Any:
    if method == "fit":
        x, t = args.pop("x"), args.pop("targets")
        return net.fit(x, t, **args)
    names = METHODS[method]
    return getattr(net, method)(*(args[a] for a in names if a in args))


@pytest.mark.parametrize("place", place_params())
def test_methods_raise_bpx_errors_naming_the_argument(place, tmp_path):
    """One argument of fit/evaluate/train_step/compute_loss/predict/predict_classes/forward replaced
    by a bad (or surprising but valid) value: a bpx error naming it, or finite results."""

    @budget(place, 150, jax=5)
    @given(method=st.sampled_from(sorted(METHODS)), loss=st.sampled_from(LOSSES), seed=st.integers(0, 2**32 - 1),
           dtype=st.sampled_from(["float32", "float64"]), data=st.data())
    def check(method, loss, seed, dtype, data):
        rng = np.random.default_rng(seed)
        net = bpx.Sequential(bpx.Dense(3, 4), bpx.Tanh(), bpx.Dense(4, 3), backend=place[0], device=place[1],
                             dtype=dtype, seed=0)
        n = int(rng.integers(2, 6))
        x = rng.normal(size=(n, 3))
        t = valid_targets(loss, n, 3, rng)
        args: dict[str, Any] = {"x": x, "targets": t, "loss": loss, "optimizer": bpx.SGD(0.1), "epochs": 1,
                                "batch_size": 2, "verbose": 0, "training": False}
        args = {a: v for a, v in args.items() if a in METHODS[method]}
        arg = data.draw(st.sampled_from(METHODS[method]), label="argument")
        if arg in ("x", "targets"):
            cases = array_cases(arg, x if arg == "x" else t, place, net, loss, rng)
            label = data.draw(st.sampled_from(sorted(cases)), label="mutation")
            case = cases[label]
            if label in ("fewer_samples", "empty") and method in ("predict", "predict_classes", "forward"):
                case = Case(case.value, "ok", ())  # predicting on fewer (or no) samples is fine
        elif arg == "validation_data" and data.draw(st.booleans()):
            vcases = array_cases("x", x, place, net, loss, rng) | {
                f"t_{k}": v for k, v in array_cases("targets", t, place, net, loss, rng).items()}
            label = data.draw(st.sampled_from(sorted(vcases)), label="mutation")
            inner = vcases[label]
            pair = (inner.value, t) if not label.startswith("t_") else (x, inner.value)
            if label.endswith("fewer_samples") or label.endswith("empty"):
                inner = Case(None, "error", ("validation",))
            case = Case(pair, inner.expect, ("validation",))
        else:
            value = data.draw(st.sampled_from(SCALARS[arg]), label="value")
            if isinstance(value, bpx.Optimizer):  # a fresh one: an optimizer serves one network
                value = type(value)(**value.hyperparameters())
            case = Case(value, "either", NAMES.get(arg, (arg,)))
        args[arg] = case.value
        if arg == "loss" and args.get("targets") is t and method not in ("predict", "predict_classes", "forward"):
            case.names = (*case.names, "targets")
        kept = case.value.detach().clone() if getattr(case.value, "requires_grad", False) else None
        result, err = outcome(lambda: call(net, method, dict(args)))
        if kept is not None:  # a tensor that requires grad is accepted and never modified
            assert case.value.requires_grad and bool((case.value == kept).all())
        context = f"{method}({arg}={case.value!r}) [{case.expect}]"
        if err is not None:
            assert case.expect != "ok", f"{context} raised {err!r}"
            assert names_argument(err, *case.names), f"{context}: the message does not name it: {err}"
            return
        if case.expect == "error":
            raise AssertionError(f"{context} was accepted: {result!r}")
        if case.expect == "device":
            assert method not in ("fit", "evaluate"), f"{context}: device data not checked"
            return  # predict/train_step/compute_loss do not read device data back
        assert finite_tree(result), f"{context} gave non-finite results"
        assert all(np.all(np.isfinite(v)) for v in net.state_dict().values())

    check()


# ---------------------------------------------------------------------- state_dict and explicit weights
@pytest.mark.parametrize("place", place_params())
def test_load_state_dict_and_explicit_weights(place):
    """load_state_dict and Dense(weight=, bias=) with mutated values: a bpx error naming the entry,
    or (big-endian, negative strides, ints, device arrays, lists) the exact values loaded."""

    @budget(place, 60, jax=5)
    @given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["float32", "float64"]), data=st.data())
    def check(seed, dtype, data):
        rng = np.random.default_rng(seed)
        net = bpx.Sequential(bpx.Dense(3, 2), bpx.ReLU(), bpx.Dense(2, 2), backend=place[0], device=place[1],
                             dtype=dtype, seed=0)
        state = {k: np.round(rng.normal(size=v.shape), 3) for k, v in net.state_dict().items()}
        key = data.draw(st.sampled_from(sorted(state)), label="entry")
        cases = array_cases("weights", state[key], place, net, "mean_squared_error", rng)
        for label in ("fewer_samples", "empty", "extra_axis", "booleans", "int", "foreign"):
            cases.pop(label, None)
        cases["transposed"] = Case(state[key].T if state[key].ndim == 2 and state[key].shape[0] != state[key].shape[1]
                                   else state[key][None], "error", (key,))
        cases["ints"] = Case(np.round(state[key] * 100).astype(np.int16), "ok", ())
        cases["bools"] = Case(state[key] > 0, "error", (key,))
        label = data.draw(st.sampled_from(sorted(cases)), label="mutation")
        case = cases[label]
        if label == "device_nonfinite":
            case = Case(case.value, "error", (key,))  # explicit values are always read and checked
        if label == "scalar":
            case = Case(case.value, "ok", ())  # a number fills the shape
        mutated = {**state, key: case.value}
        before = net.state_dict()
        _, err = outcome(lambda: net.load_state_dict(mutated))
        if err is not None:
            assert case.expect != "ok", f"load_state_dict {key}={label}: {err!r}"
            assert names_argument(err, key), f"load_state_dict {key}={label}: {err}"
            after = net.state_dict()
            assert all(np.array_equal(after[k], before[k]) for k in before), "a failed load changed the weights"
        else:
            assert case.expect == "ok", f"load_state_dict accepted {key}={label}"
            expected = np.broadcast_to(np.asarray(bpx.to_host(case.value) if not isinstance(case.value, list)
                                                  else case.value, dtype=np.float64), state[key].shape)
            np.testing.assert_array_equal(net.state_dict()[key], expected.astype(dtype))
        if key == "layers.0.weight":  # the same values as an explicit Dense weight
            value = case.value
            _, err = outcome(lambda: bpx.Sequential(bpx.Dense(3, 2, weight=value), backend=place[0],
                                                    device=place[1], dtype=dtype))
            valid = case.expect == "ok" or label == "none"  # weight=None: drawn by the initialiser
            assert (err is None) == valid, f"Dense(weight={label}): {err!r}"
            if err is not None:
                assert names_argument(err, "weight", "layers.0.weight"), str(err)

    check()
