"""The fit loop's contract, counted by hand: the history (every batch loss, their sample-weighted
mean, lr, time, accuracy whatever the check interval), argument checks (verbose, initial_epoch,
callbacks), resumed runs and schedules, metrics that evaluate reuses, Ctrl-C in an epoch's last
batch, a compiled JAX fit with a short last batch, and the meta device."""

import signal
from pathlib import Path

import numpy as np
import pytest

import bpx


def test_fit_and_evaluate_on_the_meta_device_say_what_to_do():
    pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(2, 1), backend="torch", device="meta", seed=0)
    with pytest.raises(bpx.StateError, match="fit needs values, but the network is on PyTorch's 'meta' device"):
        net.fit(np.ones((4, 2)), np.ones((4, 1)), loss="mse", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.StateError, match="evaluate needs values, but the network is on PyTorch's 'meta'"):
        net.evaluate(np.ones((4, 2)), np.ones((4, 1)), loss="mse")


def test_the_history_keeps_each_batch_loss_and_the_epoch_loss_is_their_weighted_mean():
    """Weights w = 0 and bias b: the outputs are b for every sample, so each batch loss of the first
    epoch is mean((b − t)²) over its rows, by hand."""
    x, t = np.zeros((5, 2)), np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=0.0, bias=1.0), dtype="float64", seed=0)
    history = net.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=1e-300), epochs=1, batch_size=2, shuffle=False,
                      verbose=0)
    expected = [np.mean((1.0 - t[0:2]) ** 2), np.mean((1.0 - t[2:4]) ** 2), np.mean((1.0 - t[4:5]) ** 2)]
    np.testing.assert_allclose(history.batch_losses, expected, rtol=1e-12)
    np.testing.assert_allclose(history["loss"], [np.mean((1.0 - t) ** 2)], rtol=1e-12)
    assert history["lr"] == [1e-300] and len(history["time"]) == 1 and 0.0 <= history["time"][0] < 60.0


def small():
    return bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0), np.ones((3, 2)), np.ones((3, 1))


def test_callbacks_none_means_no_callbacks():
    net, x, t = small()
    history = net.fit(x, t, loss="mse", optimizer="sgd", epochs=2, verbose=0, callbacks=None)
    assert len(history["loss"]) == 2 and not history.stopped_early


@pytest.mark.parametrize("verbose", [3, -1, 1.0, 1.5, "1", None])
def test_verbose_must_be_0_1_2_or_a_bool(verbose):
    net, x, t = small()
    with pytest.raises(bpx.BpxValueError, match=r"verbose must be 0 \(silent\), 1 \(progress\) or 2"):
        net.fit(x, t, loss="mse", optimizer="sgd", verbose=verbose)


def test_verbose_true_shows_progress_and_false_is_silent(capsys):
    net, x, t = small()
    net.fit(x, t, loss="mse", optimizer="sgd", epochs=1, verbose=False)
    quiet = capsys.readouterr()
    net.fit(x, t, loss="mse", optimizer="sgd", epochs=1, verbose=True)
    loud = capsys.readouterr()
    assert quiet.out + quiet.err == "" and "loss" in loud.out + loud.err


def test_initial_epoch_must_leave_an_epoch_to_train():
    net, x, t = small()
    for initial in (2, 3):
        with pytest.raises(bpx.BpxValueError, match=rf"initial_epoch={initial} leaves nothing to train: epochs=2"):
            net.fit(x, t, loss="mse", optimizer="sgd", epochs=2, initial_epoch=initial, verbose=0)
    history = net.fit(x, t, loss="mse", optimizer="sgd", epochs=2, initial_epoch=1, verbose=0)
    assert len(history["loss"]) == 1 and net.epochs_trained == 1


def test_a_resumed_fit_continues_with_the_batch_orders_of_the_later_epochs():
    """fit(epochs=3) equals fit(epochs=1) then fit(epochs=3, initial_epoch=1) with the same seed:
    the resumed run draws (and skips) the batch order of epoch 1 before it trains epochs 2 and 3."""
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(6, 2)), rng.normal(size=(6, 1))
    runs = []
    for parts in ([(3, 0)], [(1, 0), (3, 1)]):
        net, sgd = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0), bpx.SGD(lr=0.1)
        for epochs, initial in parts:
            net.fit(x, t, loss="mse", optimizer=sgd, epochs=epochs, initial_epoch=initial, batch_size=2, seed=5,
                    verbose=0)
        runs.append(net.state_dict())
    for name, value in runs[0].items():
        np.testing.assert_array_equal(runs[1][name], value, err_msg=name)
    one_epoch_fewer = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    one_epoch_fewer.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=2, batch_size=2, seed=5, verbose=0)
    assert not np.array_equal(one_epoch_fewer.state_dict()["layers.0.weight"], runs[0]["layers.0.weight"])


def test_a_schedule_scales_the_rate_the_optimizer_has_when_fit_starts():
    net, x, t = small()
    sgd = bpx.SGD(lr=0.1)
    sgd.lr = 0.4
    history = net.fit(x, t, loss="mse", optimizer=sgd, epochs=3, lr_schedule=bpx.StepLR(1, 0.5), verbose=0)
    assert history["lr"] == [0.4, 0.2, 0.1] and sgd.lr == 0.4


def test_a_compiled_jax_fit_with_a_short_last_batch_takes_the_hand_computed_steps():
    """5 samples in batches of 2 (chunks of full batches, then a batch of 1), E = mean (x·w + b − t)²."""
    pytest.importorskip("jax")
    w, b = np.array([[0.5], [-1.0]]), np.array([0.25])
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    t = np.array([[1.0], [0.0], [-1.0], [2.0], [0.5]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), backend="jax", dtype="float64", seed=0)
    net.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=1, batch_size=2, shuffle=False, verbose=0,
            compile=True, check_every=3)
    for lo in (0, 2, 4):
        xb, tb = x[lo:lo + 2], t[lo:lo + 2]
        r = xb @ w + b - tb
        w, b = w - 0.1 * 2 * xb.T @ r / len(xb), b - 0.1 * 2 * r.mean(axis=0)
    np.testing.assert_allclose(bpx.to_host(net.layers[0].weight.value), w, rtol=1e-12)
    np.testing.assert_allclose(bpx.to_host(net.layers[0].bias.value), b, rtol=1e-12)


def test_callbacks_may_monitor_validation_metrics():
    net, x, t = small()
    history = net.fit(x, t, loss="mse", optimizer="sgd", epochs=3, verbose=0, validation_data=(x, t),
                      callbacks=[bpx.EarlyStopping(monitor="val_loss", patience=5)])
    assert len(history["val_loss"]) == 3


def test_an_unseeded_fit_shuffles_by_the_network_seed():
    """Same weights, different network seeds: the unseeded batch orders (and so the weights) differ."""
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    weights = []
    for seed in (1, 2, 1, 63):
        net = bpx.Sequential(bpx.Dense(2, 1, weight=[[0.5], [-0.5]], bias=[0.0]), dtype="float64", seed=seed)
        net.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=0.1), epochs=1, batch_size=2, verbose=0)
        weights.append(net.layers[0].weight.value.copy())
    assert np.array_equal(weights[0], weights[2])
    assert not np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[0], weights[3])


def test_evaluate_with_another_loss_reports_that_losss_metrics_not_the_remembered_ones():
    net = bpx.Sequential(bpx.Dense(2, 2), dtype="float64", seed=0)
    x, labels = np.eye(2), np.array([0, 1])
    net.fit(x, labels, loss="ce", optimizer="sgd", verbose=0)
    assert net.metrics == ["accuracy"] and set(net.evaluate(x, labels)) == {"loss", "accuracy"}
    assert set(net.evaluate(x, np.eye(2), loss="mse")) == {"loss"}  # squared error: no accuracy unless asked


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_verbose_0_1_and_2_are_accepted(verbose, capsys):
    net, x, t = small()
    net.fit(x, t, loss="mse", optimizer="sgd", epochs=1, verbose=verbose)
    out = capsys.readouterr()
    assert ("loss" in out.out + out.err) == (verbose > 0)


@pytest.mark.parametrize("check_every", [None, 1, 2])
def test_training_accuracy_counts_each_sample_once_whatever_the_check_interval(check_every):
    """Identity weights: the outputs are the inputs, so a sample is right when argmax(x) is its label:
    samples 0, 1, 3 and 4 of the 5 (hand count), whatever batches are read back together."""
    x = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0], [1.0, 0.5]])
    labels = np.array([0, 1, 1, 1, 0])
    net = bpx.Sequential(bpx.Dense(2, 2, weight=np.eye(2), bias=0.0), dtype="float64", seed=0)
    history = net.fit(x, labels, loss="ce", optimizer=bpx.SGD(lr=1e-300), epochs=1, batch_size=2, shuffle=False,
                      check_every=check_every, verbose=0)
    assert history["accuracy"] == [4 / 5]


def test_evaluate_without_a_loss_reports_the_metrics_fit_reported():
    net = bpx.Sequential(bpx.Dense(2, 2), dtype="float64", seed=0)
    x, rows = np.eye(2), np.eye(2)
    net.fit(x, rows, loss="mse", optimizer="sgd", metrics=["accuracy"], verbose=0)
    assert set(net.evaluate(x, rows)) == {"loss", "accuracy"}  # mse by default has none: these are fit's
    assert set(net.evaluate(x, rows, loss="mse")) == {"loss"}


def test_binary_cross_entropy_training_accuracy_reads_soft_targets_at_one_half():
    """Identity weights: logits = inputs. Target 0.7 means "yes", 0.2 "no" (decided at 0.5): samples
    0 and 2 are right in both outputs, sample 1 is wrong in its second (hand count): 2/3."""
    x = np.array([[1.0, -1.0], [-2.0, 3.0], [0.5, 0.5]])
    t = np.array([[0.7, 0.2], [0.0, 0.2], [0.9, 0.6]])
    net = bpx.Sequential(bpx.Dense(2, 2, weight=np.eye(2), bias=0.0), dtype="float64", seed=0)
    history = net.fit(x, t, loss="bce", optimizer=bpx.SGD(lr=1e-300), epochs=1, batch_size=3, shuffle=False,
                      verbose=0)
    assert history["accuracy"] == [2 / 3]


def test_fit_keeps_no_gradient_in_the_parameters():
    net, x, t = small()
    net.train_step(x, t, "mse", "sgd")
    assert net.layers[0].weight.grad is not None  # a lone step keeps its gradient
    net.fit(x, t, loss="mse", optimizer="sgd", verbose=0)
    assert net.layers[0].weight.grad is None and net.layers[0].bias.grad is None


class InterruptAt(bpx.ReLU):
    """A ReLU that sends SIGINT (Ctrl-C) to this process in its ``at``-th forward pass."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x, ctx):
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return super().forward(x, ctx)


def test_ctrl_c_in_the_last_batch_of_an_epoch_completes_that_epoch():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        net = bpx.Sequential(bpx.Dense(2, 2), InterruptAt(3), bpx.Dense(2, 1), dtype="float64", seed=0)
        history = net.fit(np.ones((6, 2)), np.ones((6, 1)), loss="mse", optimizer="sgd", epochs=3, batch_size=2,
                          shuffle=False, verbose=0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert history.interrupted and not history.partial_epoch
    assert net.epochs_trained == 1 and len(history.batch_losses) == 3 and net.step_count == 3


def test_non_finite_device_data_is_refused_before_training():
    torch = pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(2, 1), backend="torch", dtype="float64", seed=0)
    x, t = torch.ones((3, 2), dtype=torch.float64), torch.ones((3, 1), dtype=torch.float64)
    bad_x, bad_t = x.clone(), t.clone()
    bad_x[1, 0], bad_t[2, 0] = float("nan"), float("inf")
    with pytest.raises(bpx.BpxValueError, match=r"^x holds a non-finite value \(nan\) at index \(1, 0\)"):
        net.fit(bad_x, t, loss="mse", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.BpxValueError, match=r"^targets holds a non-finite value \(inf\) at index \(2, 0\)"):
        net.fit(x, bad_t, loss="mse", optimizer="sgd", verbose=0)
    assert net.step_count == 0


@pytest.mark.parametrize("make", [lambda mode: bpx.EarlyStopping(mode=mode),
                                  lambda mode: bpx.ModelCheckpoint("best.npz", mode=mode)])
def test_callbacks_refuse_an_unknown_mode(make):
    with pytest.raises(bpx.BpxValueError, match="mode"):
        make("maximum")
    make("max")


def test_a_reused_model_checkpoint_tracks_the_best_of_each_fit_afresh(tmp_path):
    x, t = np.ones((4, 2)), np.zeros((4, 1))
    checkpoint = bpx.ModelCheckpoint(tmp_path / "best.npz", monitor="loss", save_best_only=True)
    good = bpx.Sequential(bpx.Dense(2, 1, weight=0.0, bias=0.0), dtype="float64", seed=0)
    good.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=1e-300), epochs=1, callbacks=[checkpoint], verbose=0)
    assert len(checkpoint.saved) == 1
    worse = bpx.Sequential(bpx.Dense(2, 1, weight=1.0, bias=1.0), dtype="float64", seed=0)
    worse.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=1e-300), epochs=1, callbacks=[checkpoint], verbose=0)
    assert len(checkpoint.saved) == 1  # its first epoch is the best of this fit, though worse than the last fit's


def test_early_stopping_waits_3_epochs_by_default():
    assert bpx.EarlyStopping().patience == 3


@pytest.mark.parametrize("monitor", ["loss", "accuracy"])
def test_model_checkpoint_saves_only_strict_improvements_by_default(tmp_path, monitor):
    """A perfect fit (zero gradient) repeats its loss and accuracy: only the first epoch improves."""
    x, labels = np.eye(2), np.array([0, 1])
    net = bpx.Sequential(bpx.Dense(2, 2, weight=np.eye(2) * 50.0, bias=0.0), dtype="float64", seed=0)
    checkpoint = bpx.ModelCheckpoint(tmp_path / "best-{epoch}.npz", monitor=monitor)
    history = net.fit(x, labels, loss="ce", optimizer=bpx.SGD(lr=1e-300), epochs=3, callbacks=[checkpoint],
                      verbose=0)
    assert history["accuracy"] == [1.0, 1.0, 1.0] and history["loss"][0] == history["loss"][2]
    assert [Path(p).name for p in checkpoint.saved] == ["best-1.npz"]


def test_model_checkpoint_refuses_a_metric_the_fit_does_not_report(tmp_path):
    net, x, t = small()
    with pytest.raises(bpx.BpxValueError, match=r"cannot monitor 'val_loss': this fit reports \['loss'\]"):
        net.fit(x, t, loss="mse", optimizer="sgd", verbose=0, callbacks=[bpx.ModelCheckpoint(tmp_path / "a.npz")])


def test_improvements_count_only_beyond_min_delta_and_checkpoints_take_any_decrease(tmp_path):
    """Plain gradient descent on a convex loss: the loss decreases a little every epoch."""
    x, t = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0], [-1.0]])
    losses = []
    for min_delta in (0.0, 10.0):
        net = bpx.Sequential(bpx.Dense(2, 1, weight=0.0, bias=0.0), dtype="float64", seed=0)
        stop = bpx.EarlyStopping(monitor="loss", patience=1, min_delta=min_delta, restore_best=False)
        checkpoint = bpx.ModelCheckpoint(tmp_path / f"{min_delta}-{{epoch}}.npz", monitor="loss")
        history = net.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=0.01), epochs=4, shuffle=False, verbose=0,
                          callbacks=[stop, checkpoint])
        losses.append(history["loss"])
        assert len(checkpoint.saved) == len(history["loss"])  # every epoch improved the loss
        assert len(history["loss"]) == (4 if min_delta == 0.0 else 2)  # 10 is more than any decrease here
    assert losses[0][0] > losses[0][1] > losses[0][2] > losses[0][3]

