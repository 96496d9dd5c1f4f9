"""The ``bpx`` command as a new user meets it (issue 12), run as ``python -m bpx`` in a subprocess:
readable and honest output, one-line errors, checks before any work, every command and option."""

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import bpx
from bpx.version import DISTRIBUTION, __version__

MINI = ["--dataset", "mnist-mini", "--threads", "1"]
SMALL = [*MINI, "--hidden", "16", "--limit", "500", "--epochs", "1"]
MINI_FILES = Path(bpx.__file__).parent / "datasets" / "data" / "mnist-mini"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def figures(stdout):
    match = re.search(r"(test (?:subset )?accuracy) (\d+\.\d\d)%  test loss (\d+\.\d{4})", stdout)
    assert match, stdout
    return match[1], match[2], match[3]


def assert_one_line_error(result, status, *fragments):
    assert result.returncode == status, result.stderr
    assert len(result.err_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- entry points, help, version
def test_python_dash_m_bpx_version_and_backends(bpx_run):
    result = bpx_run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"bpx {__version__} ({DISTRIBUTION})"
    result = bpx_run("backends")
    assert result.returncode == 0
    assert result.stdout.startswith(f"bpx {__version__} (pip: {DISTRIBUTION})")
    for name in ("numpy", "cupy", "torch", "jax", "array_api_strict"):
        assert re.search(rf"^{name}\s", result.stdout, re.MULTILINE), result.stdout


def test_console_script_is_installed():
    exe = shutil.which("bpx")
    if exe is None:
        pytest.skip("the bpx console script is not on PATH (install with pip install -e .)")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "eval", "demo", "explain", "backends"):
        assert command in result.stdout


def test_help_shows_the_defaults(bpx_run):
    text = " ".join(bpx_run("train", "--help").stdout.split())
    for default in ("--batch-size BATCH_SIZE images per training step (default: 128)", "(default: 0.9)",
                    "(default: 10)", "(default: cosine)", "(default: 256 256", "0.05 for sgd, 0.001 for adam"):
        assert default in text
    assert "(default: 1024)" in " ".join(bpx_run("eval", "--help").stdout.split())


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "abc"], "argument --lr: expected a positive number, got 'abc'"),
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["train", "--dropout", "1.5"], "argument --dropout: expected a number in [0, 1), got '1.5'"),
    (["train", "--backend", "tensorflow"], "argument --backend: expected one of numpy, cupy, torch"),
    (["train", "--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["train", "--lim", "5"], "unrecognized arguments: --lim 5"),
])
def test_bad_values_name_the_flag_and_the_value(bpx_run, argv, message):
    result = bpx_run(*argv)
    assert_one_line_error(result, 2, message, "(see bpx train --help)")
    assert not re.search(r"positive_float|positive_int|invalid \w+ value", result.stderr)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist-mini", "--data-dir", "."], "--data-dir: mnist-mini is packaged with bpx"),
    (["--dataset", "mnist-mini", "--no-download"], "--no-download: mnist-mini is packaged with bpx"),
    (["--dataset", "mnist-mini", "--optimizer", "adam", "--momentum", "0.5"], "--momentum: only --optimizer sgd"),
    (["--dataset", "mnist-mini", "--hidden", "--dropout", "0.5"], "--dropout: the network has no hidden layer"),
    (["--dataset", "mnist-mini", "--model", "cnn", "--batch-norm"], "--batch-norm: --model cnn has"),
    (["--dataset", "mnist-mini", "--compile"], "--compile: only jax and torch compile steps"),
    (["--data-dir", "/nonexistent/mnist"], "--data-dir /nonexistent/mnist: no such folder"),
])
def test_options_that_would_be_ignored_are_errors(bpx_run, argv, message):
    assert_one_line_error(bpx_run("train", *argv), 2, f"bpx train: error: {message}")


# ---------------------------------------------------------------------- what training prints
def test_training_output_is_plain_readable_and_names_the_test_split(bpx_run):
    result = bpx_run("train", *MINI, "--hidden", "16", "--limit", "500", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "\r" not in err  # no progress bars in a log
    assert ("MLP 784-16-10 (relu) · softmax cross-entropy · SGD lr 0.05 momentum 0.9 · cosine schedule over 2 "
            "epochs") in err
    assert "data: 500 training images of mnist-mini in 4 batches of 128 · 1,000 test images" in err
    assert "on: numpy cpu float32 · 1 thread (--threads)" in err
    assert re.search(r"^epoch 1/2  loss \d\.\d{4}  accuracy \d+\.\d\d%  lr 0\.05  ", err, re.MULTILINE)
    for raw in ("SGD(", "Backend(", "CpuDevice", "val_", "validation"):
        assert raw not in err
    assert re.fullmatch(r"test accuracy \d+\.\d\d%  test loss \d\.\d{4}  after 2 epochs  \d+\.\ds  "
                        r"\[numpy cpu float32\]\n", result.stdout)


def test_validation_split_is_called_validation(bpx_run):
    result = bpx_run("train", *SMALL, "--validation", "1000")
    assert result.returncode == 0, result.stderr
    assert "of mnist-mini in 4 batches of 128 · 1,000 validation images · 1,000 test images" in result.stderr
    assert re.search(r"epoch 1/1  loss .*  val_loss .*  val_accuracy ", result.stderr)
    assert result.stdout.startswith("test accuracy ")


def test_quiet_prints_only_the_figures(bpx_run):
    result = bpx_run("train", *SMALL, "--quiet")
    assert result.returncode == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 1 and result.stdout.startswith("test accuracy ")


def test_training_is_reproducible(bpx_run):
    runs = [figures(bpx_run("train", *SMALL, "--quiet").stdout) for _ in range(2)]
    assert runs[0] == runs[1]


def test_divergence_is_one_error_line_without_warnings(bpx_run):
    result = bpx_run("train", *SMALL, "--lr", "1e12")
    assert result.returncode == 1
    assert result.err_lines[-1].startswith("bpx train: error: the training loss became nan at epoch 1, batch ")
    assert "Try a smaller learning rate (now 1e+12)" in result.err_lines[-1]
    assert not re.search(r"Warning|overflow|invalid value|Traceback", result.stderr), result.stderr


@pytest.mark.parametrize("option, path, message", [
    ("--save", "missing/m.npz", "--save missing/m.npz: cannot write checkpoint 'missing/m.npz': the folder "
                                "'missing' does not exist"),
    ("--plot", "missing/c.png", "--plot missing/c.png: cannot write plot 'missing/c.png': the folder 'missing'"),
    ("--plot", "c.xyz", "--plot c.xyz: matplotlib cannot write .xyz files; use one of"),
    ("--save", ".", "--save .: cannot write checkpoint '.': it names a folder"),
])
def test_output_paths_are_checked_before_any_work(bpx_run, tmp_path, option, path, message):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    result = bpx_run("train", *SMALL, option, path, cwd=tmp_path)
    assert_one_line_error(result, 1, f"bpx train: error: {message}")  # nothing loaded or trained before
    assert ".tmp" not in result.stderr and list(tmp_path.iterdir()) == []


def test_missing_data_is_one_line(bpx_run, tmp_path):
    result = bpx_run("train", "--data-dir", tmp_path, "--no-download")
    assert result.returncode == 1 and result.err_lines[-1].startswith("bpx train: error: ")
    assert "missing MNIST files: train-images-idx3-ubyte" in result.err_lines[-1]


@pytest.mark.parametrize("argv, message", [
    (["--device", "mps"], "--device mps: the numpy backend has only the device 'cpu'"),
    (["--device", "cuda:0"], "--device cuda:0: the numpy backend has only the device 'cpu'"),
    pytest.param(["--backend", "torch", "--device", "mps"], "--device mps: torch: ",
                 marks=pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")),
    pytest.param(["--backend", "torch", "--device", "meta"], "--device meta: PyTorch's 'meta' device holds shapes",
                 marks=pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")),
    (["--backend", "array_api_strict", "--device", "device9"], "--device device9: array_api_strict has no device"),
])
def test_unusable_devices_are_one_line_errors(bpx_run, argv, message):
    assert_one_line_error(bpx_run("train", *SMALL, *argv), 1, f"bpx train: error: {message}")


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_mixed_precision_trains_saves_float32_masters_and_evaluates(bpx_run, tmp_path):
    trained = bpx_run("train", *SMALL, "--backend", "torch", "--dtype", "bfloat16", "--save", "m.npz", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "[torch cpu bfloat16]" in trained.stdout and float(figures(trained.stdout)[1]) > 20  # chance: 10
    assert bpx.io.read_header(tmp_path / "m.npz")["dtype"] == "float32"  # the master weights
    evaluated = bpx_run("eval", "m.npz", *MINI, "--backend", "torch", "--dtype", "bfloat16", cwd=tmp_path)
    assert figures(evaluated.stdout) == figures(trained.stdout)
    assert_one_line_error(bpx_run("train", *SMALL, "--dtype", "bfloat16"), 1,
                          "bpx train: error: --backend numpy: dtype 'bfloat16' is not available")


# ---------------------------------------------------------------------- honest figures, eval
@pytest.mark.parametrize("loss, label", [("binary_cross_entropy", "test subset accuracy"),
                                         ("half_squared_error", "test accuracy")])
def test_accuracy_is_labelled_by_its_meaning_and_eval_agrees(bpx_run, tmp_path, loss, label):
    trained = bpx_run("train", *SMALL, "--loss", loss, "--save", "m.npz", "--quiet", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert figures(trained.stdout)[0] == label
    evaluated = bpx_run("eval", "m.npz", *MINI, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert figures(evaluated.stdout) == figures(trained.stdout)  # was: 96 % in train, 82.9 % in eval


def test_eval_reads_only_the_test_split(bpx_run, tmp_path):
    trained = bpx_run("train", *SMALL, "--save", "m.npz", "--quiet", cwd=tmp_path)
    data = tmp_path / "only-test"
    data.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MINI_FILES / name, data / name)
    result = bpx_run("eval", "m.npz", "--data-dir", data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "loading mnist (test split)" in result.stderr and "MLP 784-16-10 (relu)" in result.stderr
    assert figures(result.stdout) == figures(trained.stdout)  # mnist-mini's test split is these files
    assert "on 1,000 test images of mnist  [numpy cpu float32]" in result.stdout


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "it is a folder, not a checkpoint file"),
    (lambda d: d / "none.npz", "none.npz: no such checkpoint file"),
    (lambda d: (d / "bad.npz").write_bytes(b"not a zip") and d / "bad.npz", "bad.npz"),
])
def test_eval_of_something_that_is_not_a_checkpoint(bpx_run, tmp_path, make, message):
    assert_one_line_error(bpx_run("eval", make(tmp_path), "--dataset", "mnist-mini"), 1, message)


# ---------------------------------------------------------------------- datasets and models
def test_fashion_mnist_cnn_dropout_and_batch_norm(bpx_run, tmp_path):
    data = tmp_path / "fashion"
    shutil.copytree(MINI_FILES, data)  # same file names and format as Fashion-MNIST
    result = bpx_run("train", "--dataset", "fashion-mnist", "--data-dir", data, "--limit", "200", "--epochs", "1",
                     "--model", "cnn", "--channels", "4", "--hidden", "16", "--threads", "1", "--save", "cnn.npz",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CNN 1x28x28 → conv 4 (5x5) → dense 16-10 · " in result.stderr
    assert "200 training images of fashion-mnist" in result.stderr
    evaluated = bpx_run("eval", "cnn.npz", "--dataset", "fashion-mnist", "--data-dir", data, cwd=tmp_path)
    assert figures(evaluated.stdout) == figures(result.stdout)

    result = bpx_run("train", *SMALL, "--hidden", "32", "--dropout", "0.2", "--batch-norm", "--save", "mlp.npz",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MLP 784-32-10 (relu, batch norm, dropout 0.2)" in result.stderr
    evaluated = bpx_run("eval", "mlp.npz", *MINI, cwd=tmp_path)
    assert figures(evaluated.stdout) == figures(result.stdout)  # inference mode: no dropout, running statistics


# ---------------------------------------------------------------------- plots
def test_plot_file_mode_and_one_epoch_axis(bpx_run, tmp_path):
    pytest.importorskip("matplotlib")
    result = bpx_run("train", *SMALL, "--plot", "c.png", cwd=tmp_path)
    assert result.returncode == 0 and "wrote c.png" in result.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "c.png").stat().st_mode) == 0o666 & ~umask  # was 0600

    from bpx.training.history import History

    fig = History(metrics={"loss": [0.5], "accuracy": [0.9]}).plot()
    for ax in fig.axes:
        assert list(ax.get_xticks()) == [1] and ax.get_xlim() == (0.5, 1.5)  # was: ticks 0.96, 0.98, ...


# ---------------------------------------------------------------------- demo and explain
def test_demo_prints_the_worked_example(bpx_run):
    result = bpx_run("demo")
    assert result.returncode == 0
    for figure in ("0.593269992", "0.298371109", "0.0821670406", "0.291027774", "3.51018778e-05"):
        assert figure in result.stdout


def test_explain_formats_and_errors(bpx_run, tmp_path):
    result = bpx_run("explain", "--format", "markdown", "--steps", "2")
    assert result.returncode == 0 and "0.298371109" in result.stdout
    assert_one_line_error(bpx_run("explain", tmp_path / "missing.json"), 1, "bpx explain: error: ", "missing.json")
    assert_one_line_error(bpx_run("explain", "--steps", "0"), 2, "argument --steps: expected a positive integer")
    assert_one_line_error(bpx_run("explain", "--backend", "array_api_strict", "--device", "device9"), 1,
                          "bpx explain: error: --device device9: array_api_strict has no device")


# ---------------------------------------------------------------------- the package
def test_datasets_after_import_bpx():
    code = "import bpx; (x, y), _ = bpx.datasets.mnist_mini(); print(x.shape)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "(6000, 784)"
