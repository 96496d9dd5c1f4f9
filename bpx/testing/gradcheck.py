"""Finite-difference gradient checking, a public tool (like Chainer's ``check_backward``).

The check runs on a float64 copy of the network on the same backend and device (shared layers
stay shared), so it never changes the network it is given. It compares the gradient that
``backward`` accumulates with central differences of E, per coordinate for small networks and
along random directions for large ones. The passes run in training mode with the step number
fixed, so random masks (dropout) are the same in every evaluation. Host synchronisation is
expected here: this is a test tool, not a hot path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import check_choice, check_float, check_int
from ..errors import BpxValueError, GradcheckError
from ..host.arrays import to_host
from ..nn.losses import Loss
from ..nn.network import Network
from ..nn.parameter import Gradients


@dataclass
class TensorCheck:
    """Result for one parameter tensor (coordinate mode) or one random direction."""

    name: str
    shape: tuple[int, ...]
    analytic: np.ndarray
    numeric: np.ndarray
    rel_error: float
    worst_index: tuple[int, ...] = ()

    def line(self, rtol: float) -> str:
        mark = "ok  " if self.rel_error <= rtol else "FAIL"
        a, n = self.analytic[self.worst_index], self.numeric[self.worst_index]
        return (f"{mark} {self.name:<22} {self.shape!s:<12} rel.err {self.rel_error:9.2e}   "
                f"worst {self.worst_index}: analytic {a: .12e}  numeric {n: .12e}")


@dataclass
class GradcheckResult:
    """All tensor checks; ``ok`` when every relative error is at most ``rtol``."""

    checks: list[TensorCheck]
    rtol: float
    h: float
    mode: str
    loss_value: float
    notes: list[str] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        return max((c.rel_error for c in self.checks), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.rtol

    def report(self) -> str:
        head = (f"gradcheck ({self.mode}, central differences in float64, h={self.h:g}): "
                f"E={self.loss_value:.12g}, max rel.err {self.max_rel_error:.2e} "
                f"(rtol {self.rtol:g}) -> {'PASS' if self.ok else 'FAIL'}")
        return "\n".join([head, *(c.line(self.rtol) for c in self.checks), *self.notes])

    __str__ = report


def gradcheck(net: Network, x: Any, targets: Any, loss: str | Loss, *, h: float = 1e-5, rtol: float = 1e-6,
              mode: str = "auto", max_coordinates: int = 4000, directions: int = 16, seed: int = 0,
              raise_on_failure: bool = False) -> GradcheckResult:
    """Compare ``backward``'s ∂E/∂param with central differences (E(w+h) − E(w−h)) / 2h.

    The relative error of a tensor is ``‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖)``
    (robust to individual gradients that are zero). ``mode`` is ``"coordinates"`` (every
    entry), ``"directions"`` (``directions`` random unit directions over all parameters, drawn
    from ``seed``) or ``"auto"`` (coordinates up to ``max_coordinates`` trainable entries). Only
    trainable parameters are checked. Raises :class:`bpx.GradcheckError` on failure when
    ``raise_on_failure``.
    """
    h = check_float(h, "gradcheck h", 0.0, low_open=True)
    rtol = check_float(rtol, "gradcheck rtol", 0.0, low_open=True)
    check_choice(mode, "gradcheck mode", ("auto", "coordinates", "directions"))
    directions = check_int(directions, "gradcheck directions")
    net64 = net.to(net.backend, dtype="float64")
    loss_fn = net64.resolve_loss(loss)
    xd = net64.prepare_inputs(x)
    td = loss_fn.prepare_targets(targets, net64.backend, net64.output_shape)
    params = {name: p for name, p in net64.named_parameters().items() if p.trainable}
    if not params:
        raise BpxValueError("gradcheck: the network has no trainable parameters")
    step = net.step_count

    def energy() -> float:
        ctx = net64.context(training=True, step=step)
        return float(to_host(loss_fn.value(net64.forward_pass(xd, ctx, keep=False).outputs, td, ctx)))

    ctx = net64.context(training=True, step=step)
    passed = net64.forward_pass(xd, ctx)
    value, g = loss_fn.value_and_grad(passed.outputs, td, ctx)
    grads = Gradients(net64.store)
    net64.backward(passed, g, grads, ctx)
    flat = to_host(grads.flat()).astype(np.float64)
    slices = net64.store.slices()
    analytic = {name: flat[slices[p][0]:slices[p][1]].reshape(p.shape) for name, p in params.items()}
    base = {name: to_host(p.value).astype(np.float64) for name, p in params.items()}

    def set_values(values: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            p.value = values[name]

    total = sum(v.size for v in base.values())
    if mode == "auto":
        mode = "coordinates" if total <= max_coordinates else "directions"
    if mode == "coordinates":
        checks = [_check_tensor(name, base, analytic[name], set_values, energy, h) for name in params]
    else:
        checks = _check_directions(base, analytic, set_values, energy, h, directions, seed)
    set_values(base)
    result = GradcheckResult(checks, rtol, h, mode, float(to_host(value)))
    if raise_on_failure and not result.ok:
        raise GradcheckError(result.report())
    return result


def _rel_error(a: np.ndarray, n: np.ndarray) -> float:
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(n)))
    return float(np.linalg.norm(a - n)) / scale if scale > 0 else 0.0


def _check_tensor(name: str, base: dict[str, np.ndarray], analytic: np.ndarray, set_values: Any,
                  energy: Any, h: float) -> TensorCheck:
    numeric = np.zeros_like(analytic)
    values = dict(base)
    for index in np.ndindex(base[name].shape):
        for sign in (1.0, -1.0):
            moved = base[name].copy()
            moved[index] += sign * h
            values[name] = moved
            set_values(values)
            numeric[index] += sign * energy()
    numeric /= 2.0 * h
    worst = np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), analytic.shape) if analytic.size else ()
    return TensorCheck(name, analytic.shape, analytic, numeric, _rel_error(analytic, numeric),
                       tuple(int(i) for i in worst))


def _check_directions(base: dict[str, np.ndarray], analytic: dict[str, np.ndarray], set_values: Any,
                      energy: Any, h: float, directions: int, seed: int) -> list[TensorCheck]:
    rng = np.random.default_rng(seed)
    checks = []
    for k in range(directions):
        d = {name: rng.standard_normal(v.shape) for name, v in base.items()}
        norm = math.sqrt(sum(float(np.sum(v * v)) for v in d.values()))
        d = {name: v / norm for name, v in d.items()}
        slope = sum(float(np.sum(analytic[name] * d[name])) for name in base)
        energies = []
        for sign in (1.0, -1.0):
            set_values({name: base[name] + sign * h * d[name] for name in base})
            energies.append(energy())
        numeric = (energies[0] - energies[1]) / (2.0 * h)
        checks.append(TensorCheck(f"direction {k}", (), np.array(slope), np.array(numeric),
                                  _rel_error(np.array([slope]), np.array([numeric]))))
    return checks
