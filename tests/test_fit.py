"""fit / evaluate / predict: real training on mnist-mini, the once-per-epoch read-back,
callbacks, schedules, the non-finite guard and Ctrl-C."""

import math
import signal

import numpy as np
import pytest

import bpx
from bpx.callbacks import EarlyStopping
from bpx.datasets import mnist_mini
from bpx.schedules import CosineLR, StepLR
from bpx.testing import assert_close
from bpx.train import NonFiniteLossError


@pytest.fixture(scope="module")
def mini():
    (x, y), (xt, yt) = mnist_mini()
    return x[:2000], y[:2000], xt[:500], yt[:500]


def mlp(backend="numpy", device=None, dtype="float32", seed=0, hidden=32):
    return bpx.Sequential(bpx.Dense(784, hidden, init="he_uniform"), bpx.ReLU(), bpx.Dense(hidden, 10),
                          backend=backend, device=device, dtype=dtype, seed=seed)


def test_fit_learns_mnist_mini_and_reports_history(mini):
    x, y, xt, yt = mini
    net = mlp()
    hist = net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.02, momentum=0.9), epochs=3,
                   batch_size=64, validation_data=(xt, yt), seed=0, verbose=0)
    assert hist.epochs == 3 and not hist.interrupted
    assert set(hist.metrics) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert hist["loss"][2] < hist["loss"][0]
    assert hist["val_accuracy"][-1] > 0.85
    assert len(hist.batch_losses) == 3 * math.ceil(2000 / 64)
    result = net.evaluate(xt, yt)
    assert result["accuracy"] == pytest.approx(hist["val_accuracy"][-1])
    assert result["loss"] == pytest.approx(hist["val_loss"][-1], rel=1e-5)


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses(mini):
    x, y, *_ = mini
    net = mlp()
    hist = net.fit(x[:100], y[:100], loss="ce", optimizer="sgd", epochs=1, batch_size=32, verbose=0)
    sizes = [32, 32, 32, 4]
    expected = sum(v * s for v, s in zip(hist.batch_losses, sizes, strict=True)) / 100
    assert hist["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_one_hot_targets_and_squared_error_classification(mini):
    x, y, xt, yt = mini
    net = bpx.Sequential(bpx.Dense(784, 32), bpx.Sigmoid(), bpx.Dense(32, 10), bpx.Sigmoid(), seed=0)
    hist = net.fit(x, np.eye(10)[y], loss="half_squared_error", optimizer=bpx.SGD(lr=3.0), epochs=3,
                   batch_size=32, validation_data=(xt, np.eye(10)[yt]), seed=0, verbose=0)
    assert hist["val_accuracy"][-1] > 0.7


def test_predict_in_batches_equals_one_pass(mini):
    x, *_ = mini
    net = mlp(dtype="float64")
    assert_close(net.predict(x[:300], batch_size=128), net.predict(x[:300]))
    assert net.predict(x[:300]).shape == (300, 10)


def test_fit_reads_back_once_per_epoch_and_never_syncs_per_batch(monkeypatch, mini):
    """On PyTorch's meta device any read-back raises; the only read is the per-epoch one."""
    pytest.importorskip("torch")
    import bpx.train as train_module

    reads = []
    monkeypatch.setattr(train_module, "_read", lambda arrays, xp: reads.append(len(arrays)) or [0.0] * len(arrays))
    x, y, xt, yt = mini
    net = mlp(backend="torch", device="meta")
    hist = net.fit(x[:640], y[:640], loss="softmax_cross_entropy", optimizer=bpx.Adam(), epochs=2, batch_size=64,
                   validation_data=(xt[:100], yt[:100]), seed=0, verbose=0)
    assert hist.epochs == 2
    # per epoch: one read of 10 losses, one of 10 correct counts, one for validation
    assert reads == [10, 10, 2, 10, 10, 2]
    assert all(p.value.device.type == "meta" for p in net.parameters())


def test_check_every_reads_at_the_interval(monkeypatch, mini):
    import bpx.train as train_module

    calls = []
    real = train_module._read
    monkeypatch.setattr(train_module, "_read", lambda arrays, xp: calls.append(len(arrays)) or real(arrays, xp))
    x, y, *_ = mini
    mlp().fit(x[:640], y[:640], loss="ce", optimizer="sgd", epochs=1, batch_size=64, check_every=4, verbose=0)
    assert calls == [4, 4, 4, 4, 2, 2]


def test_same_seed_same_batches(mini):
    x, y, *_ = mini
    a, b = mlp(), mlp()
    for net in (a, b):
        net.fit(x[:500], y[:500], loss="ce", optimizer="sgd", epochs=2, batch_size=50, seed=7, verbose=0)
    for name, value in a.state_dict().items():
        assert np.array_equal(value, b.state_dict()[name])
    c = mlp()
    c.fit(x[:500], y[:500], loss="ce", optimizer="sgd", epochs=2, batch_size=50, seed=8, verbose=0)
    assert not np.array_equal(a.state_dict()["layers.0.weight"], c.state_dict()["layers.0.weight"])


def test_non_finite_loss_names_epoch_and_batch_and_restores_weights(mini):
    x, y, *_ = mini
    x = x[:320].copy()
    x[3 * 32 + 5, 10] = np.nan  # batch 4 of these; batch 14 after 10 clean batches (no shuffling)
    net = mlp()
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 1, batch 14; .* restored to before batch 11"):
        net.fit(np.concatenate([np.zeros_like(x), x]), np.concatenate([y[:320], y[:320]]), loss="ce",
                optimizer="sgd", epochs=1, batch_size=32, shuffle=False, verbose=0, check_every=10)
    assert all(np.all(np.isfinite(v)) for v in net.state_dict().values())


def test_stepped_and_cosine_schedules():
    assert [StepLR(2, 0.5)(e, 1.0) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    cosine = CosineLR(4, min_lr=0.1)
    assert cosine(0, 1.0) == pytest.approx(1.0) and cosine(4, 1.0) == pytest.approx(0.1)
    assert cosine(2, 1.0) == pytest.approx(0.55)
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        StepLR(0)


def test_fit_applies_the_schedule(mini):
    x, y, *_ = mini
    hist = mlp().fit(x[:200], y[:200], loss="ce", optimizer=bpx.SGD(lr=0.2), epochs=3, batch_size=50,
                     lr_schedule=StepLR(1, 0.5), verbose=0)
    assert hist["lr"] == [0.2, 0.1, 0.05]


def test_early_stopping_restores_the_best_weights(mini):
    x, y, xt, yt = mini
    net = mlp()
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    # a learning rate this large makes the validation loss worse after the first epochs
    hist = net.fit(x, y, loss="ce", optimizer=bpx.SGD(lr=2.0), epochs=30, batch_size=500,
                   validation_data=(xt, yt), callbacks=[stopper], seed=0, verbose=0)
    assert hist.stopped_early and hist.epochs < 30
    best = int(np.argmin(hist["val_loss"]))
    assert net.evaluate(xt, yt)["loss"] == pytest.approx(hist["val_loss"][best], rel=1e-5)


def test_early_stopping_needs_validation_metrics(mini):
    x, y, *_ = mini
    with pytest.raises(KeyError, match=r"cannot monitor 'val_loss'.*need validation_data"):
        mlp().fit(x[:100], y[:100], loss="ce", optimizer="sgd", epochs=2, callbacks=[EarlyStopping()], verbose=0)


class InterruptAfter(bpx.ReLU):
    """A ReLU that delivers Ctrl-C (SIGINT) to the process during its n-th forward pass."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.n:
            signal.raise_signal(signal.SIGINT)
        return super().forward(x)


def test_ctrl_c_stops_at_a_batch_boundary_and_keeps_model_and_history(mini):
    x, y, *_ = mini
    relu = InterruptAfter(5)
    net = bpx.Sequential(bpx.Dense(784, 16), relu, bpx.Dense(16, 10), seed=0)
    hist = net.fit(x[:640], y[:640], loss="ce", optimizer="sgd", epochs=3, batch_size=64, verbose=0)
    assert hist.interrupted and hist.epochs == 1
    assert relu.calls == 5  # the 5th batch was finished, no further batch started
    assert len(hist.batch_losses) == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"batch_size": 2.5}, "batch_size must be a positive int"),
])
def test_bad_fit_arguments(mini, kwargs, message):
    x, y, *_ = mini
    with pytest.raises(ValueError, match=message):
        mlp().fit(x[:10], y[:10], loss="ce", optimizer="sgd", verbose=0, **kwargs)


def test_mismatched_sample_counts(mini):
    x, y, *_ = mini
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        mlp().fit(x[:10], y[:9], loss="ce", optimizer="sgd", verbose=0)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: validation y: class label 10 is outside"):
        mlp().fit(x[:10], y[:10], loss="ce", optimizer="sgd", verbose=0, validation_data=(x[:2], [0, 10]))


def test_model_checkpoint_keeps_the_best_epoch(tmp_path, mini):
    from bpx.callbacks import ModelCheckpoint

    x, y, xt, yt = mini
    net = mlp()
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy")
    every = ModelCheckpoint(tmp_path / "epoch{epoch}.npz", save_best_only=False)
    hist = net.fit(x, y, loss="ce", optimizer=bpx.SGD(lr=0.05), epochs=3, batch_size=100,
                   validation_data=(xt, yt), callbacks=[best, every], seed=0, verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "epoch1.npz", "epoch2.npz", "epoch3.npz"]
    restored = bpx.load(tmp_path / "best.npz")
    assert restored.evaluate(xt, yt)["accuracy"] == max(hist["val_accuracy"])


def test_callable_initialiser_round_trips(tmp_path):
    net = bpx.Sequential(bpx.Dense(3, 2, init=lambda rng, shape: rng.uniform(-1, 1, size=shape)), seed=0)
    again = bpx.load(net.save(tmp_path / "m.npz"))
    assert np.array_equal(again.state_dict()["layers.0.weight"], net.state_dict()["layers.0.weight"])
