"""Property-based tests of the public API (issue #11 C): random shapes, dtypes, backends, losses,
optimizers and activations, checked against independent references.

* Accepted input gives finite outputs equal to a NumPy float64 forward pass computed by hand from
  ``net.state_dict()``, and losses equal to NumPy formulas written independently of bpx's.
* ``evaluate``'s accuracy equals a hand count over ``predict``'s outputs (arg-max against labels;
  all decisions right for binary cross-entropy).
* One ``train_step`` equals the same step in PyTorch (autograd and ``torch.optim``).
* ``fit`` never returns non-finite parameters: it raises :class:`bpx.NonFiniteError` instead and
  leaves the weights of the last check.

Every backend/device runs (array-api-strict on its default device and on ``device1``); JAX gets
few examples because eager JAX is slow. Bad input is fuzzed in ``test_bad_values.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_places import budget, place_params

import bpx
from bpx.testing import assert_close, tolerance

# ---------------------------------------------------------------------- networks as data
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal")


@dataclass
class Spec:
    """A Dense/activation stack: ``widths[0]`` inputs, then one Dense per further width, each hidden
    one followed by an activation; ``final`` an optional activation after the last Dense."""

    widths: list[int]
    hidden: list[tuple[str, float]]  # (activation, leaky slope)
    final: str | None
    use_bias: list[bool]
    frozen: list[tuple[bool, bool]]
    inits: list[str]
    seed: int
    dtype: str
    extras: dict = field(default_factory=dict)

    def layers(self) -> list[bpx.Layer]:
        layers: list[bpx.Layer] = []
        for i, (n_in, n_out) in enumerate(zip(self.widths[:-1], self.widths[1:], strict=True)):
            train_w, train_b = self.frozen[i]
            layers.append(bpx.Dense(n_in, n_out, init=self.inits[i], use_bias=self.use_bias[i],
                                    train_weight=train_w, train_bias=train_b or not self.use_bias[i]))
            if i < len(self.hidden):
                layers.append(make_activation(*self.hidden[i]))
        if self.final is not None:
            layers.append(make_activation(self.final, 0.01))
        return layers

    def build(self, place: tuple[str, object]) -> bpx.Sequential:
        return bpx.Sequential(*self.layers(), backend=place[0], device=place[1], dtype=self.dtype, seed=self.seed)


def make_activation(name: str, slope: float) -> bpx.Layer:
    if name == "leaky_relu":
        return bpx.LeakyReLU(slope)
    return {"sigmoid": bpx.Sigmoid, "tanh": bpx.Tanh, "relu": bpx.ReLU, "identity": bpx.Identity,
            "softmax": bpx.Softmax}[name]()


@st.composite
def specs(draw, finals=(None, "sigmoid", "tanh", "softmax", "identity"), min_out: int = 1,
          dtypes=("float32", "float64")) -> Spec:
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 6)) for _ in range(depth)] + [draw(st.integers(min_out, 5))]
    hidden = [(draw(st.sampled_from(ACTIVATIONS)), draw(st.sampled_from([0.0, 0.01, 0.3, 1.0])))
              for _ in range(depth - 1)]
    use_bias = [draw(st.booleans()) for _ in range(depth)]
    frozen = [(draw(st.sampled_from([True, True, True, False])), draw(st.sampled_from([True, True, False])))
              for _ in range(depth)]
    return Spec(widths, hidden, draw(st.sampled_from(finals)), use_bias, frozen,
                [draw(st.sampled_from(INITS)) for _ in range(depth)], draw(st.integers(0, 2**31 - 1)),
                draw(st.sampled_from(dtypes)))


# ---------------------------------------------------------------------- NumPy references (float64)
def ref_activation(name: str, slope: float, z: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # a closed form bpx does not use
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def ref_forward(spec: Spec, state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The network's outputs computed by hand from its state_dict, layer by layer in float64."""
    h = np.asarray(x, dtype=np.float64)
    position = 0
    for i in range(len(spec.widths) - 1):
        h = h @ state[f"layers.{position}.weight"].astype(np.float64)
        if f"layers.{position}.bias" in state:
            h = h + state[f"layers.{position}.bias"].astype(np.float64)
        position += 1
        if i < len(spec.hidden):
            h = ref_activation(*spec.hidden[i], h)
            position += 1
    if spec.final is not None:
        h = ref_activation(spec.final, 0.01, h)
    return h


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def ref_loss(name: str, outputs: np.ndarray, targets: np.ndarray) -> float:
    """Each loss from its textbook definition (labels turned into one-hot rows by hand)."""
    o = outputs.astype(np.float64)
    n, k = o.shape
    if name in ("softmax_cross_entropy",):
        t = np.eye(k)[targets] if targets.ndim == 1 else targets
        return float(-(t * log_softmax(o)).sum() / n)
    t = targets.astype(np.float64)
    if name == "half_squared_error":
        return float(0.5 * ((t - o) ** 2).sum() / n)
    if name == "mean_squared_error":
        return float(((t - o) ** 2).mean())
    # binary cross-entropy of sigmoid(o): −t log σ(o) − (1 − t) log(1 − σ(o)), with log σ(o) = −log(1 + e^−o)
    return float((t * np.logaddexp(0.0, -o) + (1.0 - t) * np.logaddexp(0.0, o)).mean())


def ref_accuracy(name: str, outputs: np.ndarray, targets: np.ndarray) -> float | None:
    """Hand count: arg-max against the class (single-label) or every decision right (BCE)."""
    n = outputs.shape[0]
    if name == "binary_cross_entropy":
        return sum(all((outputs[i, j] > 0) == (targets[i, j] >= 0.5) for j in range(outputs.shape[1]))
                   for i in range(n)) / n
    if name == "softmax_cross_entropy" or (targets.ndim == 2 and targets.shape[1] > 1):
        labels = targets if targets.ndim == 1 else targets.argmax(axis=1)
        return sum(int(outputs[i].argmax()) == int(labels[i]) for i in range(n)) / n
    return None


@st.composite
def targets_for(draw, loss: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Valid targets for ``loss`` and outputs ``(n, k)``."""
    if loss == "softmax_cross_entropy":
        form = draw(st.sampled_from(["labels", "labels", "one_hot", "probabilities"]))
        if form == "labels":
            return rng.integers(0, k, size=n).astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
        if form == "one_hot":
            return np.eye(k)[rng.integers(0, k, size=n)]
        p = rng.random((n, k)) + 1e-3
        return p / p.sum(axis=1, keepdims=True)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, k)).astype(np.float64) if draw(st.booleans()) else rng.random((n, k))
    return rng.normal(size=(n, k)) * 2.0


LOSSES = ("half_squared_error", "mean_squared_error", "softmax_cross_entropy", "binary_cross_entropy")


def loss_tolerance(dtype: str, value: float) -> dict[str, float]:
    tol = tolerance(dtype, 4.0)
    return {"rel": tol, "abs": tol * max(1.0, abs(value))}


# ---------------------------------------------------------------------- forward passes
@pytest.mark.parametrize("place", place_params())
def test_predict_matches_a_numpy_forward_pass(place):
    """predict (any batch_size) and predict_classes equal the hand-computed forward pass; outputs are
    finite, on the network's device and of its dtype."""

    @budget(place, 25, jax=2)
    @given(spec=specs(), n=st.integers(1, 7), seed=st.integers(0, 2**32 - 1), data=st.data())
    def check(spec, n, seed, data):
        net = spec.build(place)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, spec.widths[0])) * data.draw(st.sampled_from([0.1, 1.0, 3.0]))
        kind = data.draw(st.sampled_from(["float64", "float32", "int", "bool", "list"]))
        if kind == "int":
            x = np.round(x).astype(np.int64)
        elif kind == "bool":
            x = x > 0
        elif kind == "float32":
            x = x.astype(np.float32)
        given_x = x.tolist() if kind == "list" else x
        batch_size = data.draw(st.sampled_from([None, 1, 2, 3, 100]))
        outputs = net.predict(given_x, batch_size=batch_size)
        host = bpx.to_host(outputs)
        assert host.shape == (n, spec.widths[-1])
        assert host.dtype == np.dtype(spec.dtype)
        assert np.all(np.isfinite(host))
        expected = ref_forward(spec, net.state_dict(), np.asarray(x, dtype=np.float64))
        assert_close(host, expected, dtype=spec.dtype, factor=4.0)
        assert np.array_equal(bpx.to_host(net.forward(given_x)), bpx.to_host(net.predict(given_x)))
        classes = bpx.to_host(net.predict_classes(given_x, batch_size=batch_size))
        assert np.array_equal(classes, host.argmax(axis=1))

    check()


# ---------------------------------------------------------------------- losses and accuracy
@pytest.mark.parametrize("place", place_params())
def test_evaluate_and_compute_loss_match_numpy(place):
    """evaluate's loss equals the NumPy loss of the hand-computed outputs, compute_loss agrees, and
    evaluate's accuracy equals a hand count over predict's outputs (same batches)."""

    @budget(place, 25, jax=2)
    @given(spec=specs(finals=(None, "identity", "tanh")), loss=st.sampled_from(LOSSES),
           n=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), data=st.data())
    def check(spec, loss, n, seed, data):
        net = spec.build(place)
        k = spec.widths[-1]
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, spec.widths[0]))
        t = data.draw(targets_for(loss, n, k, rng))
        batch_size = data.draw(st.sampled_from([1, 2, 4, 1024]))
        metrics = data.draw(st.sampled_from([None, ["accuracy"], []]))
        if metrics == ["accuracy"] and ref_accuracy(loss, np.zeros((n, k)), t) is None:
            with pytest.raises(bpx.BpxValueError, match="accuracy needs class labels or rows of several outputs"):
                net.evaluate(x, t, loss=loss, batch_size=batch_size, metrics=metrics)
            return
        result = net.evaluate(x, t, loss=loss, batch_size=batch_size, metrics=metrics)
        expected = ref_loss(loss, ref_forward(spec, net.state_dict(), x), t)
        assert math.isfinite(result["loss"])
        assert result["loss"] == pytest.approx(expected, **loss_tolerance(spec.dtype, expected))
        assert float(bpx.to_host(net.compute_loss(x, t, loss))) == pytest.approx(
            expected, **loss_tolerance(spec.dtype, expected))
        outputs = bpx.to_host(net.predict(x, batch_size=batch_size))
        accuracy = ref_accuracy(loss, outputs, t)
        wanted = metrics if metrics is not None else (["accuracy"] if loss in LOSSES[2:] else [])
        if "accuracy" in wanted:
            assert result["accuracy"] == accuracy
        else:
            assert "accuracy" not in result

    check()


# ---------------------------------------------------------------------- one training step vs PyTorch
def torch_reference_step(spec, state, x, t, loss, optimizer, steps):
    """The same network and updates in PyTorch float64 (autograd + torch.optim); returns the
    losses before each step and the final parameters, named as in bpx's state_dict."""
    torch = pytest.importorskip("torch")
    params = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in state.items()}
    trainable = []
    position = 0
    for i in range(len(spec.widths) - 1):
        train_w, train_b = spec.frozen[i]
        for suffix, train in (("weight", train_w), ("bias", train_b)):
            name = f"layers.{position}.{suffix}"
            if name in params:
                (trainable.append(params[name]) if train else params[name].requires_grad_(False))
        position += 2 if i < len(spec.hidden) else 1
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer.name]
    kwargs = dict(optimizer.hyperparameters())
    if optimizer.name != "sgd":
        kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2"))
    opt = opt_cls(trainable, **kwargs) if trainable else None
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    tt = torch.tensor(t) if t.ndim == 1 else torch.tensor(t, dtype=torch.float64)
    losses = []
    for _ in range(steps):
        h = xt
        position = 0
        for i in range(len(spec.widths) - 1):
            h = h @ params[f"layers.{position}.weight"]
            if f"layers.{position}.bias" in params:
                h = h + params[f"layers.{position}.bias"]
            position += 1
            if i < len(spec.hidden):
                name, slope = spec.hidden[i]
                h = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v,
                     "leaky_relu": lambda v, s=slope: torch.nn.functional.leaky_relu(v, s)}[name](h)
                position += 1
        if spec.final == "tanh":
            h = torch.tanh(h)
        n = h.shape[0]
        if loss == "half_squared_error":
            value = 0.5 * ((h - tt) ** 2).sum() / n
        elif loss == "mean_squared_error":
            value = torch.nn.functional.mse_loss(h, tt)
        elif loss == "softmax_cross_entropy":
            value = torch.nn.functional.cross_entropy(h, tt)
        else:
            value = torch.nn.functional.binary_cross_entropy_with_logits(h, tt)
        losses.append(value.item())
        if opt is not None:
            opt.zero_grad()
            value.backward()
            opt.step()
    return losses, {name: p.detach().numpy() for name, p in params.items()}


@st.composite
def optimizers(draw, dtype: str) -> bpx.Optimizer:
    kind = draw(st.sampled_from(["sgd", "adam", "adamw"]))
    lr = draw(st.sampled_from([1e-3, 0.05, 0.5]))
    if kind == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.0, 0.5, 0.9]))
        return bpx.SGD(lr, momentum=momentum, nesterov=momentum > 0 and draw(st.booleans()),
                       weight_decay=draw(st.sampled_from([0.0, 0.0, 0.1])))
    cls = bpx.Adam if kind == "adam" else bpx.AdamW
    return cls(lr, beta1=draw(st.sampled_from([0.0, 0.9])), beta2=draw(st.sampled_from([0.9, 0.999])),
               eps=draw(st.sampled_from([1e-8, 1e-3])), weight_decay=draw(st.sampled_from([0.0, 0.01, 0.1])))


@pytest.mark.parametrize("place", place_params())
def test_train_steps_match_pytorch(place):
    """1-3 train_steps (random loss, optimizer and frozen parameters) equal PyTorch's autograd and
    torch.optim: the returned losses and the parameters after the steps; grads are those of the
    last step. float64 for every optimizer; float32 for SGD."""
    pytest.importorskip("torch")

    @budget(place, 15, jax=2)
    @given(spec=specs(finals=(None, "tanh")), loss=st.sampled_from(LOSSES), n=st.integers(1, 6),
           steps=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), data=st.data())
    def check(spec, loss, n, steps, seed, data):
        optimizer = data.draw(optimizers(spec.dtype))
        if spec.dtype == "float32" and optimizer.name != "sgd":
            spec.dtype = "float64"  # Adam's m/√v amplifies float32 rounding of near-zero gradients
        net = spec.build(place)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, spec.widths[0]))
        t = data.draw(targets_for(loss, n, spec.widths[-1], rng))
        if loss == "softmax_cross_entropy" and t.ndim == 1:
            t = t.astype(np.int64)
        before = net.state_dict()
        losses = [float(bpx.to_host(net.train_step(x, t, loss, optimizer))) for _ in range(steps)]
        expected_losses, expected = torch_reference_step(spec, before, x, t, loss, optimizer, steps)
        after = net.state_dict()
        factor = 16.0 * steps
        for got, want in zip(losses, expected_losses, strict=True):
            assert math.isfinite(got)
            assert got == pytest.approx(want, **loss_tolerance(spec.dtype, want))
        for name in before:
            assert np.all(np.isfinite(after[name]))
            assert_close(after[name], expected[name], dtype=spec.dtype, factor=factor, err_msg=name)
        assert optimizer.iterations == steps and net.step_count == steps

    check()


# ---------------------------------------------------------------------- fit never returns non-finite weights
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("place", place_params())
def test_fit_raises_instead_of_returning_non_finite_parameters(place):
    """With learning rates up to 1e30 fit either trains (finite losses, finite weights) or raises
    NonFiniteError naming the epoch and batch, with the weights of the last check restored (the
    weights before fit when it fails in the first check interval)."""

    @budget(place, 20, jax=2)
    @given(spec=specs(finals=(None,), dtypes=("float32",)), loss=st.sampled_from(LOSSES),
           n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1), data=st.data())
    def check(spec, loss, n, seed, data):
        net = spec.build(place)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, spec.widths[0])) * 10.0
        t = data.draw(targets_for(loss, n, spec.widths[-1], rng))
        lr = data.draw(st.sampled_from([1e-2, 1e3, 1e10, 1e30]))
        optimizer = bpx.SGD(lr, momentum=data.draw(st.sampled_from([0.0, 0.9])))
        before = net.state_dict()
        eager_jax = place[0] == "jax"  # each eager step dispatches every operation: keep it short
        epochs = data.draw(st.integers(1, 1 if eager_jax else 3))
        check_every = data.draw(st.sampled_from([None, 1, 2]))
        try:
            history = net.fit(x, t, loss=loss, optimizer=optimizer, epochs=epochs, verbose=0, seed=0,
                              batch_size=data.draw(st.sampled_from([4, 32] if eager_jax else [1, 3, 32])),
                              check_every=check_every)
        except bpx.NonFiniteError as err:
            assert "epoch" in str(err) and "restored" in str(err)
            state = net.state_dict()
            assert all(np.all(np.isfinite(v)) for v in state.values())
            if re.search(r"epoch 1\b.*the last check \(before batch 1 of that epoch\)", str(err)):
                for name, value in before.items():
                    np.testing.assert_array_equal(state[name], value)
                # the optimizer was restored too: training on from the start with a tiny lr stays finite
                optimizer.lr = 1e-12
                net.fit(x, t, loss=loss, optimizer=optimizer, epochs=1, verbose=0)
        else:
            assert all(math.isfinite(v) for v in history["loss"])
            assert all(math.isfinite(v) for v in history.batch_losses)
        assert all(np.all(np.isfinite(v)) for v in net.state_dict().values())
        assert all(np.all(np.isfinite(bpx.to_host(s))) for s in optimizer.state.values())

    check()
