"""Ctrl-C at every moment of a command: a real SIGINT to a real ``python -m bpx`` process, sent
once a marker line shows where it is. Each run ends with status 130 and no traceback; ``train``
still saves, plots the completed epochs and prints figures computed from the saved weights."""

import re
import subprocess
import sys
import time

import pytest

import bpx
from bpx.datasets import mnist_mini

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: One BLAS thread: on a busy machine two threads wait for each other at every small product.
ONE = ["--threads", "1"]
#: Epochs of 250 small batches: a signal lands inside one, on a fast machine or a busy one.
MANY_BATCHES = ["--dataset", "mnist-mini", "--hidden", "64", "--batch-size", "8", "--limit", "2000", *ONE]
HEADER = "on: "  # the last header line, printed when training starts (the data is on the device)


def assert_clean_interrupt(result):
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert "Error" not in result.stderr, result.stderr


def printed_figures(stdout):
    match = re.search(r"test accuracy (\d+\.\d\d)%  test loss (\d+\.\d{4})", stdout)
    assert match, stdout
    return float(match[1]), float(match[2])


def assert_figures_of_saved_weights(stdout, path):
    """The printed test figures are those of the checkpoint written (not of an earlier epoch)."""
    accuracy, loss = printed_figures(stdout)
    x, y = mnist_mini(split="test")
    result = bpx.load(path).evaluate(x, y, loss="softmax_cross_entropy")
    assert f"{100 * result['accuracy']:.2f}" == f"{accuracy:.2f}"
    assert f"{result['loss']:.4f}" == f"{loss:.4f}"


def test_ctrl_c_while_loading_the_data(bpx_start, shared_mnist, tmp_path):
    run = bpx_start("train", "--data-dir", shared_mnist, "--limit", "1000", "--hidden", "8", "--epochs", "1",
                    "--save", "m.npz", *ONE, cwd=tmp_path)
    run.wait_for("loading mnist")  # the full training split takes about a second to read
    run.interrupt()
    result = run.finish()
    assert_clean_interrupt(result)
    assert result.err_lines[-1] == "bpx train: interrupted"
    assert HEADER not in result.stderr and result.stdout == ""
    assert not (tmp_path / "m.npz").exists()


def test_ctrl_c_in_the_first_epoch_saves_and_reports_the_saved_weights(bpx_start, tmp_path):
    pytest.importorskip("matplotlib")
    run = bpx_start("train", *MANY_BATCHES, "--epochs", "2", "--save", "m.npz", "--plot", "c.png", cwd=tmp_path)
    run.wait_for(HEADER)
    run.interrupt()
    result = run.finish()
    assert_clean_interrupt(result)
    assert "epoch 1/2 (interrupted)" in result.stderr  # was: KeyError: 'val_accuracy'
    assert "no plot: no epoch was completed" in result.stderr and not (tmp_path / "c.png").exists()
    assert re.search(r"after 0 epochs \+ \d+/250 batches .*\(interrupted\)$", result.stdout.strip()), result.stdout
    assert_figures_of_saved_weights(result.stdout, tmp_path / "m.npz")


def test_ctrl_c_in_a_later_epoch_plots_the_completed_epochs(bpx_start, tmp_path):
    pytest.importorskip("matplotlib")
    run = bpx_start("train", *MANY_BATCHES, "--epochs", "100", "--save", "m.npz", "--plot", "c.png", cwd=tmp_path)
    run.wait_for("epoch 1/100")
    run.interrupt()
    result = run.finish()
    assert_clean_interrupt(result)  # was: "x and y must have same first dimension", no plot, no summary
    stopped = re.search(r"epoch (\d+)/100 \(interrupted\)", result.stderr)
    assert stopped and int(stopped[1]) >= 2, result.stderr
    assert "wrote c.png" in result.stderr and (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(rf"after {int(stopped[1]) - 1} epochs?( \+ \d+/250 batches)?  ", result.stdout), result.stdout
    assert_figures_of_saved_weights(result.stdout, tmp_path / "m.npz")  # was: stale figures of epoch 1


def test_ctrl_c_during_validation(bpx_start, tmp_path):
    pytest.importorskip("matplotlib")
    # each epoch: one quick training batch, then a pass over 2,000 validation images that takes
    # over 90 % of the epoch; the signal goes 40 % of an epoch (as long as epoch 2) into epoch 3
    run = bpx_start("train", "--dataset", "mnist-mini", "--limit", "8", "--batch-size", "8", "--validation",
                    "2000", "--hidden", "512", "512", "--epochs", "4", "--save", "m.npz", "--plot", "c.png",
                    *ONE, cwd=tmp_path)
    line = run.wait_for("epoch 2/4")
    time.sleep(0.4 * float(re.search(r"(\d+\.\d+)s$", line.strip())[1]))
    run.interrupt()
    result = run.finish()
    assert_clean_interrupt(result)
    assert re.search(r"epoch 3/4  loss .* val_accuracy", result.stderr), result.stderr  # validation completed
    assert "epoch 4/4 (interrupted)" in result.stderr  # then one more batch
    assert "(interrupted)" in result.stdout and (tmp_path / "c.png").exists()
    assert_figures_of_saved_weights(result.stdout, tmp_path / "m.npz")


def test_second_ctrl_c_stops_at_once_then_saves_and_reports(bpx_start, tmp_path):
    # batches of 1000 images through 1024-1024 hidden layers: each takes a tenth of a second or more
    run = bpx_start("train", "--dataset", "mnist-mini", "--limit", "2000", "--batch-size", "1000", "--hidden",
                    "1024", "1024", "--epochs", "2", "--save", "m.npz", *ONE, cwd=tmp_path)
    run.wait_for("epoch 1/2")
    run.interrupt()
    run.wait_for("Interrupted: stopping after this batch")
    run.interrupt()
    result = run.finish()
    assert_clean_interrupt(result)
    assert "stopped at once: the weights are those of the last check" in result.stderr
    assert "after 1 epoch  " in result.stdout  # back to the check at the end of epoch 1
    assert_figures_of_saved_weights(result.stdout, tmp_path / "m.npz")


def test_ctrl_c_in_explain(bpx_start):
    run = bpx_start("explain", "--steps", "100000000")
    run.wait_for("Ctrl-C stops")
    run.interrupt()
    result = run.finish()
    assert_clean_interrupt(result)
    assert result.err_lines[-1] == "bpx explain: interrupted" and result.stdout == ""


#: Starts the command as its launcher does, and sends the process a real SIGINT as soon as
#: NumPy starts to load: deterministically while bpx is still importing its libraries.
INTERRUPTED_WHILE_IMPORTING = """
import os, signal, sys

class SendSigintWhenNumpyLoads:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.argv = [ARGV0, "train", "--dataset", "mnist-mini"]
sys.meta_path.insert(0, SendSigintWhenNumpyLoads())
if ARGV0 == "-m":
    import runpy
    runpy.run_module("bpx", run_name="__main__")
else:
    from bpx.cli import main
    sys.exit(main())
print("not interrupted")
"""


@pytest.mark.parametrize("argv0", ["bpx", "-m"], ids=["console-script", "python-m"])
def test_ctrl_c_while_the_libraries_load(argv0):
    """Before the command runs, Ctrl-C exits with 130 and one line, not an import traceback."""
    from .conftest import child_env

    code = INTERRUPTED_WHILE_IMPORTING.replace("ARGV0", repr(argv0))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=child_env(None))
    assert_clean_interrupt(result)
    assert result.stderr == "bpx: interrupted\n" and result.stdout == ""


def test_importing_bpx_as_a_library_keeps_the_default_sigint_handler():
    code = "import signal, bpx; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr
