"""The shipped examples run and print what the README says."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_worked_example_prints_every_reference_figure(backend):
    out = run("worked_example.py", "--backend", backend)
    for figure in ("out_h1 = 0.593269992107", "out_o2 = 0.772928465321", "E_total = sum 1/2 (target - out)^2 = "
                   "0.29837110876", "dE/dw1 = 0.000438567734474", "dE/dw8 = -0.022740242216",
                   "w5+ = 0.358916479718", "E after 1 step = 0.291027773694",
                   "E after 10000 steps = 3.51018778298e-05, outputs 0.0159136204436, 0.984064273515"):
        assert figure in out


def test_mnist_examples_run_one_epoch(shared_mnist):
    out = run("mnist_softmax.py", "--data-dir", str(shared_mnist), "--epochs", "1")
    assert float(out.split("test accuracy ")[1].split("%")[0]) > 88
    out = run("mnist_mlp.py", "--data-dir", str(shared_mnist), "--epochs", "1", "--limit", "10000")
    assert float(out.split("test accuracy ")[1].split("%")[0]) > 90


@pytest.mark.slow  # about 15 s: one epoch of 3,000 images, then the 10,000 test images
def test_mnist_cnn_example_learns_from_a_few_images(shared_mnist):
    out = run("mnist_cnn.py", "--data-dir", str(shared_mnist), "--epochs", "1", "--limit", "3000")
    assert float(out.split("test accuracy ")[1].split("%")[0]) > 80
