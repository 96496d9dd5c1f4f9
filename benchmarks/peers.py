"""Reference implementations bpx is compared with, each written the way an expert would.

* :class:`NumpyHand` — a lean hand-written NumPy loop: forward, backward and SGD for the MLP
  with in-place updates, float32, no gradient for the input layer.
* :class:`TorchAutograd` — ``nn.Sequential`` of ``Linear``/``ReLU``, ``F.cross_entropy``,
  ``loss.backward()`` and ``torch.optim.SGD``.
* :class:`JaxJit` — one ``jax.jit``-compiled train step (gather, loss, grad, update).
* :func:`numpy_small_step` / :func:`torch_small_step` — the 2-2-2 worked-example step.

Every class takes a :class:`~benchmarks.runner.Setup` and follows the
:class:`~benchmarks.runner.Runner` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .runner import Setup, synchronize
from .threads import configure_torch
from .workload import EpochPlan


class NumpyHand:
    """The MLP written directly in NumPy (the baseline every ratio refers to)."""

    def __init__(self, setup: Setup) -> None:
        self.params = [(w.copy(), b.copy()) for w, b in setup.weights]
        self.x, self.y = setup.data.x, setup.data.y
        self.lr = np.float32(setup.workload.lr)
        self.slices = setup.workload.slices(setup.data.n)

    def epoch(self, plan: EpochPlan) -> float:
        params, lr, last = self.params, self.lr, len(self.params) - 1
        total = 0.0
        for lo, hi in self.slices:
            idx = plan.order[lo:hi]
            xb = np.take(self.x, idx, axis=0)
            yb = np.take(self.y, idx, axis=0)
            rows = np.arange(hi - lo)
            acts = [xb]
            h = xb
            for i, (w, b) in enumerate(params):
                h = h @ w
                h += b
                if i < last:
                    np.maximum(h, 0.0, out=h)
                    acts.append(h)
            h -= h.max(axis=1, keepdims=True)  # softmax cross-entropy on the logits
            e = np.exp(h)
            s = e.sum(axis=1, keepdims=True)
            total += float(np.log(s).sum() - h[rows, yb].sum())
            g = e
            g /= s
            g[rows, yb] -= 1.0
            g *= np.float32(1.0 / (hi - lo))
            for i in range(last, -1, -1):
                w, b = params[i]
                a = acts[i]
                gw = a.T @ g
                gb = g.sum(axis=0)
                if i > 0:
                    g = g @ w.T
                    g *= a > 0
                gw *= lr
                w -= gw
                gb *= lr
                b -= gb
        return total / len(self.x)


class TorchAutograd:
    """PyTorch as its tutorials write it: modules, autograd and ``torch.optim.SGD``."""

    def __init__(self, setup: Setup) -> None:
        import torch
        import torch.nn.functional as F
        from torch import nn

        configure_torch(torch)
        self.torch, self.F = torch, F
        self.device = torch.device(setup.device or "cpu")
        layers: list[Any] = []
        last = len(setup.weights) - 1
        for i, (w, b) in enumerate(setup.weights):
            linear = nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if i < last:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=setup.workload.lr)
        self.x = torch.from_numpy(setup.data.x).to(self.device)
        self.y = torch.from_numpy(setup.data.y).to(self.device)
        self.slices = setup.workload.slices(setup.data.n)

    def epoch(self, plan: EpochPlan) -> float:
        torch, F, model, opt = self.torch, self.F, self.model, self.opt
        perm = torch.from_numpy(plan.order).to(self.device)
        total = torch.zeros((), device=self.device)
        for lo, hi in self.slices:
            idx = perm[lo:hi]
            loss = F.cross_entropy(model(self.x[idx]), self.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * (hi - lo)
        value = float(total) / len(self.x)
        synchronize(self.model.parameters())
        return value


class JaxJit:
    """A ``jax.jit``-compiled step: the batch gather, forward, ``value_and_grad`` and the SGD
    update in one XLA program; the batch indices come from the host-drawn order."""

    def __init__(self, setup: Setup) -> None:
        import jax
        import jax.numpy as jnp

        self.jax = jax
        device = _jax_device(jax, setup.device)
        self.params = [(jax.device_put(w, device), jax.device_put(b, device)) for w, b in setup.weights]
        self.x = jax.device_put(setup.data.x, device)
        self.y = jax.device_put(setup.data.y.astype(np.int32), device)
        self.device = device
        self.slices = setup.workload.slices(setup.data.n)
        lr, last = setup.workload.lr, len(setup.weights) - 1

        def loss_fn(params: list[tuple[Any, Any]], xb: Any, yb: Any) -> Any:
            h = xb
            for i, (w, b) in enumerate(params):
                h = h @ w + b
                if i < last:
                    h = jnp.maximum(h, 0.0)
            logz = jax.nn.logsumexp(h, axis=1)
            return jnp.mean(logz - jnp.take_along_axis(h, yb[:, None], axis=1)[:, 0])

        def step(params: list[tuple[Any, Any]], total: Any, x: Any, y: Any, idx: Any) -> tuple[Any, Any]:
            xb, yb = jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)
            loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
            params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
            return params, total + loss * idx.shape[0]

        self.step = jax.jit(step, donate_argnums=(0, 1))

    def epoch(self, plan: EpochPlan) -> float:
        order = plan.order.astype(np.int32)
        params = self.params
        total = self.jax.device_put(np.zeros((), np.float32), self.device)
        for lo, hi in self.slices:
            params, total = self.step(params, total, self.x, self.y, order[lo:hi])
        self.params = params
        synchronize(self.jax.tree.leaves(params))
        return float(total) / len(self.x)


def _jax_device(jax: Any, device: str | None) -> Any:
    if device is None:
        return jax.devices()[0]
    platform, _, index = str(device).partition(":")
    return jax.devices(platform)[int(index or 0)]


# ---------------------------------------------------------------------- the 2-2-2 worked example
def numpy_small_step(weights: tuple[np.ndarray, np.ndarray], biases: tuple[float, float], x: np.ndarray,
                     t: np.ndarray, lr: float) -> Callable[[], Any]:
    """A hand-written NumPy step for the 2-2-2 sigmoid net (half squared error, frozen biases,
    float64); returns a function doing one step and returning the loss as a 0-d array."""
    w1, w2 = (w.copy() for w in weights)
    b1, b2 = biases
    n = x.shape[0]

    def step() -> Any:
        h = 1.0 / (1.0 + np.exp(-(x @ w1 + b1)))
        o = 1.0 / (1.0 + np.exp(-(h @ w2 + b2)))
        d = o - t
        loss = np.sum(d * d) * (0.5 / n)
        do = d * o * (1.0 - o) * (1.0 / n)
        dh = (do @ w2.T) * h * (1.0 - h)
        np.subtract(w2, lr * (h.T @ do), out=w2)
        np.subtract(w1, lr * (x.T @ dh), out=w1)
        return loss

    return step


def torch_small_step(weights: tuple[np.ndarray, np.ndarray], biases: tuple[float, float], x: np.ndarray,
                     t: np.ndarray, lr: float) -> Callable[[], Any]:
    """The 2-2-2 step in PyTorch: ``nn.Sequential`` (frozen biases), autograd, ``optim.SGD``."""
    import torch
    from torch import nn

    configure_torch(torch)
    layers: list[Any] = []
    for w, b in zip(weights, biases, strict=True):
        linear = nn.Linear(2, 2).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.fill_(b)
        linear.bias.requires_grad_(False)
        layers += [linear, nn.Sigmoid()]
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    n = x.shape[0]

    def step() -> Any:
        loss = ((model(xt) - tt) ** 2).sum() * (0.5 / n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step
