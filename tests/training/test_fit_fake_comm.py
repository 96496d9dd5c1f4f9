"""Distributed fit and evaluate, in process, with a fake MPI communicator (no mpiexec): one rank
trains exactly as a plain fit does, takes rank 0's weights and seed from the broadcasts, prints
nothing when it is not the main rank, and evaluates only its share of the samples.
(tests/training/test_distributed.py runs the real thing under mpiexec, in subprocesses.)"""

from types import SimpleNamespace

import numpy as np
import pytest

import bpx
from bpx.host.arrays import to_host
from bpx.testing import backend_params
from bpx.training import Trainer
from bpx.training.distributed import Communicator

CASES = backend_params(dtypes=("float64",))


class FakeMPI:
    """The few ``mpi4py`` communicator methods bpx calls, for a job of ``size`` ranks whose other
    ranks contribute ``others`` to every host sum (and nothing to device sums)."""

    def __init__(self, root_values=None, root_seed=None, others=None):
        self.root_values, self.root_seed, self.others = root_values, root_seed, others

    def bcast(self, obj, root=0):
        return obj if self.root_seed is None else self.root_seed

    def Bcast(self, buffer, root=0):
        if self.root_values is not None:
            buffer[...] = self.root_values

    def Allreduce(self, send, out, op=None):
        out[...] = send + (self.others if self.others is not None and len(send) == len(self.others) else 0)

    def allreduce(self, value, op=None):
        return value


class FakeCommunicator(Communicator):
    def __init__(self, rank=0, size=1, main=None, **fake):
        self.MPI = SimpleNamespace(SUM="sum", MAX="max")
        self.comm = FakeMPI(**fake)
        self.rank, self.size, self._nccl = rank, size, None
        self._main = main

    @property
    def is_main(self):
        return self.rank == 0 if self._main is None else self._main


def problem(seed=0, n=40):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    labels = rng.integers(0, 3, size=n)
    return x, labels


def net_of(cfg, seed):
    return bpx.Sequential(bpx.Dense(3, 5), bpx.Tanh(), bpx.Dense(5, 3), backend=cfg.name, device=cfg.device,
                          dtype="float64", seed=seed)


def fit(net, x, labels, **kwargs):
    kwargs.setdefault("verbose", 0)
    return net.fit(x, labels, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.2, momentum=0.5), epochs=2,
                   batch_size=16, **kwargs)


def same_weights(a, b):
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        np.testing.assert_allclose(np.asarray(va), np.asarray(vb), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cfg", CASES)
def test_one_rank_trains_like_a_plain_fit(cfg):
    x, labels = problem()
    plain, one = net_of(cfg, 0), net_of(cfg, 0)
    expected = fit(plain, x, labels, seed=7)
    history = fit(one, x, labels, seed=7, distributed=FakeCommunicator())
    assert history is not None and history.epochs == 2
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-12)
    np.testing.assert_allclose(history["accuracy"], expected["accuracy"], rtol=1e-12)
    same_weights(one, plain)
    assert one.step_count == plain.step_count == 6


@pytest.mark.parametrize("cfg", CASES)  # JAX too: its host copy is read-only, so bpx broadcasts into its own
def test_a_replica_takes_rank_0_weights_and_seed(cfg):
    x, labels = problem()
    root, replica = net_of(cfg, 0), net_of(cfg, 1)
    root_values = np.array(to_host(root.store.values), dtype=np.float64)
    fit(root, x, labels, seed=11)
    fit(replica, x, labels, distributed=FakeCommunicator(root_values=root_values, root_seed=11))
    same_weights(replica, root)


@pytest.mark.parametrize("cfg", CASES)
def test_only_the_main_rank_prints(cfg, capsys):
    x, labels = problem()
    fit(net_of(cfg, 0), x, labels, seed=1, distributed=FakeCommunicator(main=False), verbose=1)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    fit(net_of(cfg, 0), x, labels, seed=1, distributed=FakeCommunicator(), verbose=1)
    assert "epoch 2/2" in capsys.readouterr().err


@pytest.mark.parametrize("cfg", CASES)
def test_the_second_of_two_ranks_evaluates_its_half(cfg):
    """Rank 1 of 2 evaluates samples 20..40; with rank 0's sums (samples 0..19, evaluated plainly)
    added, the result is the evaluation of all 41."""
    x, labels = problem(n=41)
    net = net_of(cfg, 0)
    full = net.evaluate(x, labels, loss="softmax_cross_entropy", metrics=["accuracy"])
    first = net.evaluate(x[:20], labels[:20], loss="softmax_cross_entropy", metrics=["accuracy"])
    others = np.array([first["loss"] * 20, first["accuracy"] * 20])
    comm = FakeCommunicator(rank=1, size=2, others=others)
    shared = Trainer(net, bpx.SoftmaxCrossEntropy(), None, comm, ["accuracy"]).evaluate(x, labels, batch_size=8)
    assert shared["loss"] == pytest.approx(full["loss"], rel=1e-12)
    assert shared["accuracy"] == pytest.approx(full["accuracy"], rel=1e-12)
