"""Data-parallel training on MPI, run with real ranks (``mpiexec -n 2``; skipped with the reason
when mpi4py or mpiexec is missing: ``pip install "bpx-backprop[mpi]"``)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpx
from bpx.datasets import mnist_mini
from bpx.testing import assert_close

SCRIPTS = Path(__file__).parent / "mpi"
# the mpiexec of the MPI runtime installed beside this Python (pip install "bpx-backprop[mpi]"), else PATH's
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")

pytestmark = [
    pytest.mark.skipif(MPIEXEC is None, reason='mpiexec not found (pip install "bpx-backprop[mpi]")'),
]


@pytest.fixture(scope="module", autouse=True)
def _mpi4py():
    pytest.importorskip("mpi4py", reason='mpi4py not installed (pip install "bpx-backprop[mpi]")')


def mpirun(ranks, script, *args, timeout=120):
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(SCRIPTS / script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def single_process(n_samples, batch):
    (x, y), (xt, yt) = mnist_mini()
    net = bpx.Sequential(bpx.Dense(784, 32, init="he_uniform"), bpx.Tanh(), bpx.Dense(32, 10), dtype="float64",
                         seed=0)
    hist = net.fit(x[:n_samples], y[:n_samples], loss="softmax_cross_entropy",
                   optimizer=bpx.SGD(lr=0.1, momentum=0.9), epochs=1, batch_size=batch, seed=3, verbose=0,
                   validation_data=(xt[:301], yt[:301]))
    return net, hist


@pytest.mark.parametrize("ranks, n_samples, batch", [(2, 6000, 128), (3, 100, 7)],
                         ids=["2-ranks-mnist-mini-batch-128", "3-ranks-uneven-batches"])
def test_ranks_end_with_the_single_process_weights(tmp_path, ranks, n_samples, batch):
    out = tmp_path / "weights.npz"
    result = mpirun(ranks, "fit_mnist_mini.py", out, n_samples, batch)
    assert result.returncode == 0, result.stderr
    net, hist = single_process(n_samples, batch)
    saved = np.load(out)
    for name, value in net.state_dict().items():
        assert_close(saved[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert_close(saved[key], hist[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_an_exception_on_one_rank_aborts_the_job_and_is_printed_once():
    result = mpirun(2, "faults.py", "raise", timeout=60)
    assert result.returncode != 0
    assert result.stderr.count("bpx rank 1/2: error; aborting all ranks") == 1
    assert "deliberate failure on rank 1 at batch 3" in result.stderr
    assert "finished" not in result.stdout


def test_a_rank_that_never_joins_times_out():
    result = mpirun(2, "faults.py", "late", timeout=60)
    assert result.returncode != 0
    assert "timed out after 2 s waiting for all 2 ranks to join" in result.stderr


def test_train_cli_distributed(tmp_path):
    model = tmp_path / "m.npz"
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "bpx", "train", "--dataset", "mnist-mini",
                             "--distributed", "--hidden", "16", "--epochs", "1", "--limit", "1000", "--quiet",
                             "--save", str(model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy") == 1  # rank 0 only
    assert bpx.load(model).n_parameters == 784 * 16 + 16 + 16 * 10 + 10


def test_scaling_benchmark_runs_in_its_quick_configuration(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--quick", "--epochs", "1", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=root)
    assert result.returncode == 0, result.stderr
    assert "| 2 |" in (tmp_path / "scaling.md").read_text()
