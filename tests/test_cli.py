"""The bpx command: train / eval / backends / demo, progress output, and one-line errors."""

import shutil
import subprocess
import sys

import pytest

from bpx.cli import main


def test_train_mnist_mini_saves_plots_and_summarises(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model, plot = tmp_path / "m.npz", tmp_path / "curves.png"
    rc = main(["train", "--dataset", "mnist-mini", "--hidden", "32", "--epochs", "2", "--limit", "1000",
               "--save", str(model), "--plot", str(plot)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.startswith("test accuracy ") and "epochs 2" in out and "[numpy cpu float32]" in out
    assert "epoch 2/2" in err  # progress bar and per-epoch line go to stderr
    assert model.stat().st_size > 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    accuracy = float(out.split()[2].rstrip("%"))
    assert accuracy > 50  # chance is 10 %

    rc = main(["eval", str(model), "--dataset", "mnist-mini", "--backend", "array_api_strict",
               "--device", "device1"])
    out, _ = capsys.readouterr()
    assert rc == 0 and f"accuracy {accuracy:.2f}%" in out and "device1" in out


def test_softmax_regression_with_squared_error_options(capsys):
    rc = main(["train", "--dataset", "mnist-mini", "--hidden", "--loss", "half_squared_error", "--optimizer", "adam",
               "--lr", "0.01", "--epochs", "1", "--limit", "500", "--quiet", "--schedule", "step"])
    out, err = capsys.readouterr()
    assert rc == 0 and "MLP 784-10" in err and "test accuracy" in out


def test_backends_lists_every_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("numpy", "cupy", "torch", "jax", "array_api_strict"):
        assert name in out
    assert "unavailable" in out or "devices" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "--epochs", "0"], "--epochs: must be a positive integer, got 0"),
    (["train", "--lr", "-1"], "--lr: must be a positive number"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_arguments_give_one_line_and_status_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["train", "--data-dir", "{tmp}", "--no-download"], "missing MNIST files"),
    (["train", "--dataset", "mnist-mini", "--backend", "tensorflow"], "unknown backend 'tensorflow'"),
    (["eval", "{tmp}/none.npz", "--dataset", "mnist-mini"], "none.npz"),
])
def test_runtime_errors_give_one_line_and_status_1(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bpx: error: ") and message in err[0]


def test_console_script_is_installed():
    exe = shutil.which("bpx")
    if exe is None:
        pytest.skip("the bpx console script is not on PATH (install with pip install -e .)")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "eval", "demo", "explain", "backends"):
        assert command in result.stdout
    result = subprocess.run([sys.executable, "-m", "bpx.cli", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--data-dir" in result.stdout


def test_demo_prints_the_worked_example(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for figure in ("0.593269992", "0.298371109", "0.0821670406", "0.291027774", "3.51018778e-05"):
        assert figure in out


def test_explain_subcommand_formats(tmp_path, capsys):
    assert main(["explain", "--format", "markdown", "--steps", "2"]) == 0
    assert "0.298371109" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "missing.json")]) == 1
    assert "missing.json" in capsys.readouterr().err


def test_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    rc = main(["train", "--dataset", "mnist-mini", "--hidden", "8", "--epochs", "1", "--limit", "200", "--quiet",
               "--plot", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert rc == 1 and 'plotting needs matplotlib: pip install "bpx[plot]"' in err
