"""Snapshots for the NaN guard and for clean failure: the last state known to be good.

A :class:`Snapshot` holds device copies of a network's parameters, buffers and step count and
of its optimizer's state and iteration count. ``fit`` takes one when training starts and after
every check that found the losses and parameters finite, and restores it when training fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..nn.network import Network
from ..optim.optimizers import Optimizer


@dataclass
class Snapshot:
    values: Any
    buffers: list[Any]
    step_count: int
    optimizer_state: dict[str, Any]
    iterations: int
    layout_version: int

    @classmethod
    def take(cls, net: Network, optimizer: Optimizer) -> Snapshot:
        xp, store = net.xp, net.store
        store.refresh_layout()
        state = {key: xp.asarray(v, copy=True) for key, v in optimizer.state.items()}
        return cls(xp.asarray(store.values, copy=True), [b.value for b in net.step_buffers()],
                   net.step_count, state, optimizer.iterations, store.layout_version)

    def restore(self, net: Network, optimizer: Optimizer) -> None:
        """Put the network and the optimizer back as they were (copies: the snapshot stays usable)."""
        xp, store = net.xp, net.store
        store.refresh_layout()
        if store.layout_version != self.layout_version:  # the trainable set changed meanwhile: keep it
            return
        if store.backend.mutable:
            store.values[...] = self.values
            store.values_updated()
        else:
            store.replace_values(xp.asarray(self.values, copy=True))
        for buffer, value in zip(net.step_buffers(), self.buffers, strict=True):
            buffer.value = value
        net.step_count = self.step_count
        optimizer.state = {key: xp.asarray(v, copy=True) for key, v in self.optimizer_state.items()}
        optimizer.iterations = self.iterations
        store.grads_valid = False
