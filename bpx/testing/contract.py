"""The layer contract: the checks every layer type must pass, whatever it computes.

A :class:`LayerCase` says how to build one instance of a layer and what input it takes; the
functions here check it on any backend:

* :func:`check_gradients`: central differences (float64) agree with ``backward`` for the layer's
  parameters and for the input gradient it passes back, inside a small network;
* :func:`check_shared_use`: the same layer object used at two positions (weight tying) lists its
  parameters once and gets the sum of both uses' gradients (again against central differences);
* :func:`check_meta`: a training step runs on PyTorch's ``meta`` device (no host synchronisation);
* :func:`check_checkpoint`: a save/load round trip reproduces the outputs on another backend;
* :func:`check_config`: the configuration rebuilds an equivalent layer.

``tests/nn/test_layer_contract.py`` runs every case through all of them on every backend; a new
layer gets these checks by adding one case there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..nn.dense import Dense
from ..nn.layer import Layer
from ..sequential import Sequential, load
from ..training.step import train_step
from .gradcheck import gradcheck
from .params import BackendConfig, assert_close


@dataclass(frozen=True)
class LayerCase:
    """One layer type under test: ``make()`` builds a fresh instance taking per-sample inputs of
    ``input_shape``; ``shareable`` when it can follow itself (output shape = input shape);
    ``tolerance`` of the central-difference check; ``before`` builds a layer with trainable
    parameters to put in front (default: a ``Dense`` for flat inputs), so that the input gradient
    the layer passes back is checked too."""

    name: str
    make: Callable[[], Layer]
    input_shape: tuple[int, ...]
    shareable: bool = True
    tolerance: float = 1e-6
    before: Callable[[], Layer] | None = None

    def network(self, cfg: BackendConfig, dtype: str | None = None, shared: bool = False) -> Sequential:
        """``[Dense →] layer [→ layer again] → Flatten-free head``: a network around the layer whose
        first Dense makes the layer's input a function of trainable weights (so the input gradient
        it passes back is checked too)."""
        layer = self.make()
        layers: list[Layer] = [layer, layer] if shared else [layer]
        return Sequential(*layers, backend=cfg.name, device=cfg.device, dtype=dtype or cfg.dtype, seed=1,
                          input_shape=self.input_shape)

    def data(self, n: int = 4, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).normal(size=(n, *self.input_shape))


def _targets(net: Sequential, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *net.output_shape))


def _with_trainable_input(case: LayerCase, cfg: BackendConfig, shared: bool = False) -> Sequential:
    """The case's network with a trainable layer in front (``case.before``, or a ``Dense`` for flat
    inputs), so the layer's input gradient reaches trainable weights and is checked too."""
    layer = case.make()
    front: list[Layer] = []
    if case.before is not None:
        front = [case.before()]
    elif len(case.input_shape) == 1:
        front = [Dense(case.input_shape[0], case.input_shape[0], init="glorot_normal")]
    layers = [*front, layer] + ([layer] if shared else [])
    return Sequential(*layers, backend=cfg.name, device=cfg.device, dtype="float64", seed=2,
                      input_shape=case.input_shape)


def check_gradients(case: LayerCase, cfg: BackendConfig) -> None:
    """``backward`` agrees with central differences of E in float64 (every coordinate)."""
    net = _with_trainable_input(case, cfg)
    x = case.data()
    result = gradcheck(net, x, _targets(net, len(x)), "half_squared_error", rtol=case.tolerance)
    assert result.ok, result.report()


def check_shared_use(case: LayerCase, cfg: BackendConfig) -> None:
    """A layer used twice lists its parameters once; its gradient is the sum over both uses."""
    net = _with_trainable_input(case, cfg, shared=True)
    layer = net.layers[-1]
    assert net.layers.count(layer) == 2
    own = layer.parameters()
    assert [p for p in net.parameters() if p in own] == own  # listed once
    x = case.data()
    result = gradcheck(net, x, _targets(net, len(x)), "half_squared_error", rtol=case.tolerance)
    assert result.ok, result.report()


def check_meta(case: LayerCase) -> None:
    """A training step on PyTorch's meta device: shapes flow, nothing is read back."""
    import torch

    net = case.network(BackendConfig("torch", "meta", "float32"))
    x = torch.empty((4, *case.input_shape), device="meta")
    t = torch.empty((4, *net.output_shape), device="meta")
    from ..optim.optimizers import SGD

    result = train_step(net, x, t, net.resolve_loss("half_squared_error"), SGD(lr=0.1, momentum=0.9))
    assert result.loss.device.type == "meta" and tuple(result.outputs.shape) == (4, *net.output_shape)


def check_checkpoint(case: LayerCase, cfg: BackendConfig, folder: Path, target: str = "numpy") -> None:
    """Train a step, save, load on ``target``: the same outputs (inference mode) and buffers."""
    from ..optim.optimizers import SGD

    net = case.network(cfg)
    x = case.data()
    net.train_step(x, _targets(net, len(x)), "half_squared_error", SGD(lr=0.01))
    path = net.save(folder / f"{case.name}.npz")
    again = load(path, backend=target)
    assert [type(layer) for layer in again.layers] == [type(layer) for layer in net.layers]
    assert_close(again.predict(x), net.predict(x), dtype=cfg.dtype)
    for name, value in net.state_dict().items():
        assert_close(again.state_dict()[name], value, dtype=cfg.dtype, err_msg=name)


def check_config(case: LayerCase) -> None:
    """``config()`` is JSON data that rebuilds a layer of the same type and configuration."""
    import json

    from ..nn.layer import layer_from_config, type_name

    layer = case.make()
    config = json.loads(json.dumps(layer.config()))
    twin = layer_from_config(type_name(type(layer)), config)
    assert type(twin) is type(layer) and twin.config() == layer.config()
    assert [p.shape for p in twin.parameters()] == [p.shape for p in layer.parameters()]
