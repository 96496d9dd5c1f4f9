"""Shared by the convolution, pooling and reshape tests: one layer stack run through bpx's real
network passes and through PyTorch autograd, both giving E = Σ outputs · grad_out's gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import bpx
from bpx.nn.parameter import Gradients
from bpx.testing import BackendConfig


def bpx_passes(layers: Sequence[bpx.Layer], x: np.ndarray, grad_out: np.ndarray, cfg: BackendConfig
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(outputs, ∂E/∂x, {parameter name: ∂E/∂parameter})`` for E = Σ outputs·grad_out, through
    ``forward_pass``, ``Gradients`` and ``backward`` of a network of ``layers`` on ``cfg``."""
    net = bpx.Sequential(*layers, backend=cfg.name, device=cfg.device, dtype=cfg.dtype, seed=0,
                         input_shape=x.shape[1:])
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    assert tuple(passed.outputs.shape) == (len(x), *net.output_shape)
    grads = Gradients(net.store)
    g = net.backend.asarray(grad_out, net.backend.dtype, copy=True)  # backward may overwrite it
    grad_x = net.backward(passed, g, grads, ctx, need_input_grad=True)
    flat = bpx.to_host(grads.flat())
    slices = net.store.slices()
    param_grads = {name: flat[slices[p][0]:slices[p][1]].reshape(p.shape)
                   for name, p in net.named_parameters().items() if p.trainable}
    return bpx.to_host(passed.outputs), bpx.to_host(grad_x), param_grads


def torch_passes(f: Callable[..., Any], x: np.ndarray, params: dict[str, np.ndarray], grad_out: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The same triple from ``f(x, **params)`` by PyTorch autograd in float64."""
    import torch

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    pt = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    y = f(xt, **pt)
    (y * torch.tensor(grad_out, dtype=torch.float64)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), {k: v.grad.numpy() for k, v in pt.items()}


def case_matrix(cases: Sequence[Any], ids: Sequence[str], dtypes: tuple[str, ...] = ("float64",),
                jax_fast: int = 2) -> list[Any]:
    """``pytest.param(cfg, case)`` for every backend configuration and case. JAX compiles every new
    slice and ``.at[].add`` shape on first use in eager mode (about a second per configuration),
    so on JAX only the first ``jax_fast`` cases run by default; the others are marked ``slow``."""
    import pytest

    from bpx.testing import backend_params

    params = []
    for backend in backend_params(dtypes=dtypes):
        cfg = backend.values[0]
        for i, (case, case_id) in enumerate(zip(cases, ids, strict=True)):
            marks = list(backend.marks) + ([pytest.mark.slow] if cfg.name == "jax" and i >= jax_fast else [])
            params.append(pytest.param(cfg, case, id=f"{case_id}-{backend.id}", marks=marks))
    return params
