"""``bpx train --resume CKPT``: continuing a run gives the weights the whole run would have given."""

import numpy as np
import pytest

import bpx

RUN = ["train", "--dataset", "mnist-mini", "--limit", "600", "--hidden", "24", "--batch-size", "100", "--threads", "1",
       "--quiet"]


def arrays(path):
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files if name != "header"}


@pytest.mark.parametrize("options", [[], ["--dropout", "0.2", "--optimizer", "adam", "--schedule", "step"]],
                         ids=["sgd-cosine", "adam-dropout-step"])
def test_two_epochs_equal_one_epoch_then_resume(bpx_run, tmp_path, options):
    whole = bpx_run(*RUN, *options, "--epochs", "2", "--save", "whole.npz", cwd=tmp_path)
    first = bpx_run(*RUN, *options, "--epochs", "1", "--save", "first.npz", cwd=tmp_path)
    # the same command as the original run, plus --resume (its --epochs counts all epochs)
    rest = bpx_run(*RUN, *options, "--epochs", "2", "--resume", "first.npz", "--save", "rest.npz", cwd=tmp_path)
    for result in (whole, first, rest):
        assert result.returncode == 0, result.stderr
    expected, got = arrays(tmp_path / "whole.npz"), arrays(tmp_path / "rest.npz")
    assert expected.keys() == got.keys() and any(k.startswith("optim/") for k in got)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert rest.stdout.split("after")[0] == whole.stdout.split("after")[0]  # the same test figures
    assert "after 2 epochs (1 epoch in this run)" in rest.stdout
    assert bpx.load(tmp_path / "rest.npz", with_optimizer=True)[1].iterations == 12


def test_resume_refuses_what_it_cannot_continue(bpx_run, tmp_path):
    assert bpx_run(*RUN, "--epochs", "1", "--save", "m.npz", cwd=tmp_path).returncode == 0
    result = bpx_run(*RUN, "--epochs", "2", "--resume", "m.npz", "--hidden", "32", cwd=tmp_path)
    assert result.returncode == 2
    assert "--hidden: describe MLP 784-32-10 (relu), but the checkpoint given to --resume holds MLP 784-24-10" \
        in result.stderr
    result = bpx_run(*RUN, "--epochs", "2", "--resume", "m.npz", "--optimizer", "adam", cwd=tmp_path)
    assert result.returncode == 2 and "continues with its own optimizer, SGD lr 0.05 momentum 0.9" in result.stderr
    result = bpx_run(*RUN, "--epochs", "1", "--resume", "m.npz", cwd=tmp_path)
    assert result.returncode == 2 and "has already been trained for 1 epoch; --epochs counts them all" \
        in result.stderr

    net = bpx.load(tmp_path / "m.npz")
    net.save(tmp_path / "weights-only.npz")
    result = bpx_run(*RUN, "--epochs", "2", "--resume", "weights-only.npz", cwd=tmp_path)
    assert result.returncode == 1 and "holds no optimizer state" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
