"""CSVLogger, JSONLinesLogger and TensorBoardLogger: one line per epoch, flushed, resumable."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import bpx
from bpx.training.callbacks import Callback

X = np.linspace(-1, 1, 40).reshape(20, 2)
Y = (X[:, 0] > 0).astype(np.int64)


def _fit(callbacks: list[Callback], epochs: int = 3, validation: bool = True, initial_epoch: int = 0,
         net: bpx.Sequential | None = None) -> bpx.Sequential:
    net = net or bpx.mlp([2, 4, 2], seed=0)
    net.fit(X, Y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.1), epochs=epochs, batch_size=5,
            validation_data=(X, Y) if validation else None, callbacks=callbacks, verbose=0,
            initial_epoch=initial_epoch)
    return net


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_header_once_and_a_row_per_epoch(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    _fit([bpx.CSVLogger(path)])
    text = path.read_text()
    assert text.splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,time"
    rows = _rows(path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(float(r["loss"]) > 0 and 0 <= float(r["accuracy"]) <= 1 and float(r["lr"]) == 0.1 for r in rows)


def test_csv_rows_are_flushed_during_training(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    seen: list[int] = []

    class Peek(Callback):
        def on_epoch_end(self, trainer, epoch, logs) -> None:
            seen.append(len(path.read_text().splitlines()))

    _fit([bpx.CSVLogger(path), Peek()], validation=False)
    assert seen == [2, 3, 4]  # the header and every completed epoch are on disk already


def test_csv_append_resumes_and_refuses_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    net = _fit([bpx.CSVLogger(path)], epochs=2)
    _fit([bpx.CSVLogger(path, append=True)], epochs=4, initial_epoch=2, net=net)
    assert path.read_text().count("epoch,") == 1
    assert [r["epoch"] for r in _rows(path)] == ["1", "2", "3", "4"]
    before = path.read_text()
    with pytest.raises(bpx.BpxValueError, match=r"columns are .* but this fit logs"):
        _fit([bpx.CSVLogger(path, append=True)], validation=False)
    assert path.read_text() == before  # nothing written
    _fit([bpx.CSVLogger(path)], epochs=1, validation=False)  # append=False starts afresh
    assert len(_rows(path)) == 1


def test_csv_append_drops_a_torn_line_and_starts_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    _fit([bpx.CSVLogger(path)], epochs=1)
    with open(path, "a") as f:
        f.write("2,0.5,0.")  # a run killed mid-line
    _fit([bpx.CSVLogger(path, append=True)], epochs=1)
    assert [r["epoch"] for r in _rows(path)] == ["1", "1"]
    fresh = tmp_path / "new.csv"
    _fit([bpx.CSVLogger(fresh, append=True)], epochs=1)
    assert fresh.read_text().startswith("epoch,")


def test_csv_separator_and_bad_arguments(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    _fit([bpx.CSVLogger(path, separator="\t")], epochs=1, validation=False)
    assert path.read_text().splitlines()[0] == "epoch\tloss\taccuracy\tlr\ttime"
    with pytest.raises(bpx.BpxValueError, match="separator"):
        bpx.CSVLogger(path, separator=",,")
    with pytest.raises(bpx.BpxTypeError, match="path"):
        bpx.CSVLogger(3)  # type: ignore[arg-type]
    with pytest.raises(bpx.CheckpointWriteError, match="does not exist"):
        _fit([bpx.CSVLogger(tmp_path / "missing" / "m.csv")], epochs=1)


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    net = _fit([bpx.JSONLinesLogger(path)], epochs=2)
    _fit([bpx.JSONLinesLogger(path, append=True)], epochs=3, initial_epoch=2, net=net)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}


def test_tensorboard(tmp_path: Path) -> None:
    try:
        logger = bpx.TensorBoardLogger(tmp_path / "tb")
    except bpx.MissingDependencyError as err:
        assert "pip install" in str(err)
        pytest.skip(f"neither torch.utils.tensorboard nor tensorboardX is installed: {err}")
    _fit([logger], epochs=2)
    assert any((tmp_path / "tb").iterdir())


def test_bpx_train_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bpx.cli import main

    monkeypatch.chdir(tmp_path)
    run = ["train", "--dataset", "mnist-mini", "--limit", "300", "--hidden", "8", "--batch-size", "100",
           "--threads", "1", "--quiet", "--validation", "100"]
    assert main([*run, "--epochs", "1", "--save", "m.npz", "--log", "m.csv"]) == 0
    assert main([*run, "--epochs", "2", "--resume", "m.npz", "--log", "m.csv"]) == 0
    rows = _rows(tmp_path / "m.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and "val_loss" in rows[0]
    assert main([*run, "--epochs", "1", "--log", "m.jsonl"]) == 0
    assert json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])["epoch"] == 1
