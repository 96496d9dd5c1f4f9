"""``--threads`` and the thread default under MPI: the header reports the thread counts measured in
the process after bpx set them (NumPy is imported before the command line is read)."""

import shutil
import sys
from pathlib import Path

import pytest

from bpx.cli.threads import choose_threads, cpu_count

SMALL = ["train", "--dataset", "mnist-mini", "--hidden", "16", "--limit", "256", "--epochs", "1"]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


def threads_line(result):
    assert result.returncode == 0, result.stderr
    return next(line for line in result.err_lines if line.startswith("on: "))


def test_threads_option_takes_effect(bpx_run):
    assert threads_line(bpx_run(*SMALL, "--threads", "1")) == "on: numpy cpu float32 · 1 thread (--threads)"


def test_under_an_mpi_launcher_each_rank_gets_its_share_of_the_cores(bpx_run):
    share = max(1, cpu_count() // 2)
    result = bpx_run(*SMALL, env={"PMI_SIZE": "2", "PMI_RANK": "0", "MPI_LOCALNRANKS": "2"})
    line = threads_line(result)
    assert line.startswith(f"on: numpy cpu float32 · {share} thread") and "(2 MPI ranks share" in line
    assert "launched as one of 2 MPI ranks without --distributed" in result.stderr


def test_a_thread_variable_set_by_the_user_wins(bpx_run):
    result = bpx_run(*SMALL, env={"OMP_NUM_THREADS": "1", "OMPI_COMM_WORLD_SIZE": "4"})
    assert threads_line(result) == "on: numpy cpu float32 · 1 thread ($OMP_NUM_THREADS)"


def test_choose_threads():
    env = {"OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert choose_threads(None, env).count == max(1, cpu_count() // 4)
    assert choose_threads(3, env).count == 3
    assert choose_threads(None, {}).count is None
    assert choose_threads(None, {"PMI_SIZE": "1"}).count is None


@pytest.mark.skipif(MPIEXEC is None, reason='mpiexec not found (pip install "bpx-backprop[mpi]")')
def test_mpiexec_distributed_training(bpx_run, tmp_path):
    pytest.importorskip("mpi4py", reason='mpi4py not installed (pip install "bpx-backprop[mpi]")')
    result = bpx_run(*SMALL, "--distributed", "--save", "m.npz", cwd=tmp_path, launcher=(MPIEXEC, "-n", "2"),
                     timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy") == 1  # rank 0 reports
    share = max(1, cpu_count() // 2)
    assert f"{share} thread" in result.stderr and "MPI ranks share" in result.stderr and "2 MPI ranks" in result.stderr
    assert (tmp_path / "m.npz").is_file()
