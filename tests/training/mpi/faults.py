"""Run under ``mpiexec -n 2`` with argv[1] = "raise" (rank 1 fails during training) or "late"
(rank 1 never reaches training within the join time-out). Used by tests/training/test_distributed.py."""

import sys
import time

from mpi4py import MPI

import bpx
from bpx.training.distributed import Communicator

rank = MPI.COMM_WORLD.Get_rank()


class FailOnRankOne(bpx.Tanh):
    calls = 0

    def forward(self, x, ctx):
        FailOnRankOne.calls += 1
        if rank == 1 and FailOnRankOne.calls == 3:
            raise RuntimeError("deliberate failure on rank 1 at batch 3")
        return super().forward(x, ctx)


if sys.argv[1] == "late" and rank == 1:
    time.sleep(30)  # longer than the join time-out below: rank 0 must give up and abort the job
comm = Communicator(join_timeout=2.0)
net = bpx.Sequential(bpx.Dense(4, 8), FailOnRankOne(), bpx.Dense(8, 2), dtype="float64", seed=0)
x = [[0.1 * i, 0.2, -0.3, 0.4] for i in range(64)]
y = [i % 2 for i in range(64)]
net.fit(x, y, loss="softmax_cross_entropy", optimizer="sgd", epochs=50, batch_size=8, verbose=0, distributed=comm)
print(f"rank {rank} finished", flush=True)
