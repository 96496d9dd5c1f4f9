"""Run under ``mpiexec -n R``: data-parallel fit of a float64 MLP on mnist-mini; rank 0 saves the
weights and history to argv[1]. Used by tests/training/test_distributed.py."""

import sys

import numpy as np
from mpi4py import MPI

import bpx
from bpx.datasets import mnist_mini

out, n_samples, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
(x, y), (xt, yt) = mnist_mini()
net = bpx.Sequential(bpx.Dense(784, 32, init="he_uniform"), bpx.Tanh(), bpx.Dense(32, 10), dtype="float64", seed=0)
hist = net.fit(x[:n_samples], y[:n_samples], loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.1, momentum=0.9),
               epochs=1, batch_size=batch, seed=3, verbose=0, validation_data=(xt[:301], yt[:301]),
               distributed=True)
if MPI.COMM_WORLD.Get_rank() == 0:
    np.savez(out, loss=np.array(hist["loss"]), accuracy=np.array(hist["accuracy"]),
             val_loss=np.array(hist["val_loss"]), val_accuracy=np.array(hist["val_accuracy"]), **net.state_dict())
