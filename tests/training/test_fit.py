"""fit / evaluate / predict on real data (mnist-mini), checked against independent references:
a hand-written NumPy forward pass, hand counts of correct predictions, and hand-computed epoch
averages; the once-per-epoch read-back; reproducible batch orders; schedules."""

import math

import numpy as np
import pytest

import bpx
from bpx.datasets import mnist_mini
from bpx.testing import assert_close


@pytest.fixture(scope="module")
def mini():
    (x, y), (xt, yt) = mnist_mini()
    return x[:2000], y[:2000], xt[:500], yt[:500]


def mlp(backend="numpy", device=None, dtype="float32", seed=0, hidden=32):
    return bpx.Sequential(bpx.Dense(784, hidden, init="he_uniform"), bpx.ReLU(), bpx.Dense(hidden, 10),
                          backend=backend, device=device, dtype=dtype, seed=seed)


def numpy_logits(net, x):
    """The MLP's outputs computed by hand in float64 from its weights (independent of bpx's passes)."""
    s = net.state_dict()
    h = np.maximum(x.astype(np.float64) @ s["layers.0.weight"] + s["layers.0.bias"], 0.0)
    return h @ s["layers.2.weight"] + s["layers.2.bias"]


def numpy_cross_entropy(z, y):
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


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
    assert net.loss == bpx.SoftmaxCrossEntropy() and net.metrics == ["accuracy"]
    assert all(p.grad is None for p in net.parameters())  # fit's optimizer worked in the gradient buffer


def test_evaluate_matches_a_hand_written_forward_pass(mini):
    x, y, xt, yt = mini
    net = mlp(dtype="float64")
    net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.05), epochs=1, batch_size=100, verbose=0)
    z = numpy_logits(net, xt)
    result = net.evaluate(xt, yt, batch_size=128)  # uses the remembered loss; batches of 128 + a remainder
    assert result["loss"] == pytest.approx(numpy_cross_entropy(z, yt), rel=1e-12)
    assert result["accuracy"] == np.count_nonzero(z.argmax(axis=1) == yt) / len(yt)
    assert_close(net.predict(xt), z)


def test_training_accuracy_is_an_honest_count(mini):
    """With a learning rate too small to move a float32 weight, every batch sees the same network:
    fit's training accuracy must equal a hand count of argmax(outputs) == label over the shuffled
    data, and its loss the mean cross-entropy."""
    x, y, *_ = mini
    net = mlp()
    z = numpy_logits(net, x[:1000])
    hist = net.fit(x[:1000], y[:1000], loss="ce", optimizer=bpx.SGD(lr=1e-30), epochs=1, batch_size=64, seed=3,
                   verbose=0)
    assert hist["accuracy"][0] == np.count_nonzero(z.argmax(axis=1) == y[:1000]) / 1000
    assert hist["loss"][0] == pytest.approx(numpy_cross_entropy(z, y[:1000]), rel=1e-5)


def test_a_ctrl_c_inside_a_gathered_chunk_counts_only_the_batches_done(mini, monkeypatch):
    """fit gathers up to 16 batches at once; a real SIGINT during the third one stops after it,
    and the partial epoch's accuracy and loss are hand counts over exactly those 3 batches."""
    import os
    import signal

    import bpx.training.loop as loop

    x, y, *_ = mini
    net = mlp()
    z = numpy_logits(net, x[:192])
    steps = []
    real_step = loop.train_step

    def step(*args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    hist = net.fit(x[:1000], y[:1000], loss="ce", optimizer=bpx.SGD(lr=1e-30), batch_size=64, shuffle=False,
                   verbose=0)
    assert hist.interrupted and hist.partial_epoch and len(steps) == 3
    assert hist["accuracy"][0] == np.count_nonzero(z.argmax(axis=1) == y[:192]) / 192
    assert hist["loss"][0] == pytest.approx(numpy_cross_entropy(z, y[:192]), rel=1e-5)


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses(mini):
    x, y, *_ = mini
    net = mlp()
    hist = net.fit(x[:100], y[:100], loss="ce", optimizer="sgd", epochs=1, batch_size=32, verbose=0)
    sizes = [32, 32, 32, 4]
    expected = sum(v * s for v, s in zip(hist.batch_losses, sizes, strict=True)) / 100
    assert hist["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_squared_error_classification_reports_accuracy_only_when_asked(mini):
    x, y, xt, yt = mini
    onehot, onehot_t = np.eye(10)[y], np.eye(10)[yt]

    def fresh():
        return bpx.Sequential(bpx.Dense(784, 32), bpx.Sigmoid(), bpx.Dense(32, 10), bpx.Sigmoid(), seed=0)

    plain = fresh().fit(x, onehot, loss="half_squared_error", optimizer=bpx.SGD(lr=3.0), epochs=1, batch_size=32,
                        validation_data=(xt, onehot_t), verbose=0)
    assert "accuracy" not in plain and "val_accuracy" not in plain  # a squared error is a regression loss
    net = fresh()
    hist = net.fit(x, onehot, loss="half_squared_error", optimizer=bpx.SGD(lr=3.0), epochs=3, batch_size=32,
                   validation_data=(xt, onehot_t), seed=0, verbose=0, metrics=["accuracy"])
    assert hist["val_accuracy"][-1] > 0.7
    outputs = bpx.to_host(net.predict(xt))
    assert net.evaluate(xt, onehot_t)["accuracy"] == np.count_nonzero(outputs.argmax(axis=1) == yt) / len(yt)


def test_regression_reports_no_accuracy_and_a_positive_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    t = (x @ np.array([[1.0], [-2.0], [0.5]])) + 0.1 * rng.normal(size=(64, 1))
    net = bpx.Sequential(bpx.Dense(3, 8), bpx.Tanh(), bpx.Dense(8, 1), dtype="float64", seed=0)
    hist = net.fit(x, t, loss="mse", optimizer=bpx.Adam(lr=0.01), epochs=5, batch_size=16, verbose=0)
    assert "accuracy" not in hist
    result = net.evaluate(x, t)  # the remembered loss: mean squared error, never cross-entropy
    assert set(result) == {"loss"}
    assert result["loss"] == pytest.approx(float(np.mean((bpx.to_host(net.predict(x)) - t) ** 2)), rel=1e-12)
    with pytest.raises(bpx.BpxValueError, match="accuracy needs class labels or rows of several outputs"):
        net.evaluate(x, t, metrics=["accuracy"])


def test_evaluate_without_a_loss_on_an_untrained_network_says_what_to_do(mini):
    x, y, *_ = mini
    with pytest.raises(bpx.BpxValueError, match="pass loss="):
        mlp().evaluate(x[:10], y[:10])
    assert set(mlp().evaluate(x[:10], y[:10], loss="ce")) == {"loss", "accuracy"}


def test_binary_cross_entropy_accuracy_is_subset_accuracy():
    """Multi-label accuracy: a sample counts when every output's decision (logit > 0) matches its
    target (≥ 0.5). Checked against a hand count on outputs fixed by the weights."""
    w = np.array([[2.0, -1.0, 0.5], [-1.0, 1.0, 1.0]])
    net = bpx.Sequential(bpx.Dense(2, 3, weight=w, bias=[0.0, 0.1, -0.2]), dtype="float64", seed=0)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    t = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=np.float64)
    decisions = (x @ w + [0.0, 0.1, -0.2]) > 0
    expected = np.count_nonzero((decisions == (t >= 0.5)).all(axis=1)) / 4
    assert net.evaluate(x, t, loss="bce")["accuracy"] == expected
    assert 0 < expected < 1
    net.loss = bpx.BinaryCrossEntropy()
    assert np.array_equal(bpx.to_host(net.predict_classes(x)), decisions)


def test_predict_in_batches_equals_one_pass(mini):
    x, *_ = mini
    net = mlp(dtype="float64")
    assert_close(net.predict(x[:300], batch_size=128), numpy_logits(net, x[:300]))
    assert net.predict(x[:300]).shape == (300, 10)
    assert net.predict(x[:0]).shape == (0, 10)


def test_predict_classes_is_the_argmax(mini):
    x, *_ = mini
    net = mlp()
    assert np.array_equal(bpx.to_host(net.predict_classes(x[:50])), numpy_logits(net, x[:50]).argmax(axis=1))


def test_fit_reads_back_once_per_epoch_and_never_syncs_per_batch(monkeypatch, mini):
    """On PyTorch's meta device any read-back raises. fit refuses a meta network (it could not
    report anything); with that guard lifted, the only reads are the per-epoch ones."""
    pytest.importorskip("torch")
    import bpx.training.loop as loop

    x, y, xt, yt = mini
    net = mlp(backend="torch", device="meta")
    with pytest.raises(bpx.StateError, match="meta"):
        net.fit(x[:64], y[:64], loss="ce", optimizer="sgd", verbose=0)
    reads = []
    monkeypatch.setattr(loop, "_read", lambda arrays, xp: reads.append(len(arrays)) or [1.0] * len(arrays))
    monkeypatch.setattr(bpx.Backend, "require_data", lambda self, what: None)
    hist = net.fit(x[:640], y[:640], loss="softmax_cross_entropy", optimizer=bpx.Adam(), epochs=2, batch_size=64,
                   validation_data=(xt[:100], yt[:100]), seed=0, verbose=0)
    assert hist.epochs == 2
    # per epoch: 10 losses, the correct count of the 10 batches gathered together, the
    # parameters-finite flag, then validation (loss, correct)
    assert reads == [10, 1, 1, 2, 10, 1, 1, 2]
    assert all(p.value.device.type == "meta" for p in net.parameters())


def test_check_every_reads_at_the_interval(monkeypatch, mini):
    import bpx.training.loop as loop

    calls = []
    real = loop._read
    monkeypatch.setattr(loop, "_read", lambda arrays, xp: calls.append(len(arrays)) or real(arrays, xp))
    x, y, *_ = mini
    mlp().fit(x[:640], y[:640], loss="ce", optimizer="sgd", epochs=1, batch_size=64, check_every=4, verbose=0)
    assert calls == [4, 1, 1, 4, 1, 1, 2, 1, 1]  # losses, the chunk's correct count, the finite flag


def test_same_seed_same_batches_and_an_unseeded_fit_is_reproducible(mini):
    x, y, *_ = mini
    a, b, c = mlp(), mlp(), mlp()
    for net in (a, b):
        net.fit(x[:500], y[:500], loss="ce", optimizer="sgd", epochs=2, batch_size=50, seed=7, verbose=0)
    for name, value in a.state_dict().items():
        assert np.array_equal(value, b.state_dict()[name])
    c.fit(x[:500], y[:500], loss="ce", optimizer="sgd", epochs=2, batch_size=50, seed=8, verbose=0)
    assert not np.array_equal(a.state_dict()["layers.0.weight"], c.state_dict()["layers.0.weight"])
    d, e = mlp(), mlp()  # seed=None: derived from the network's seed, so a script gives the same result
    for net in (d, e):
        net.fit(x[:500], y[:500], loss="ce", optimizer="sgd", epochs=1, batch_size=50, verbose=0)
    assert np.array_equal(d.state_dict()["layers.0.weight"], e.state_dict()["layers.0.weight"])


def test_each_epoch_visits_the_samples_in_a_new_order(monkeypatch, mini):
    import bpx.training.loop as loop

    orders = []
    real = loop.batch_order
    monkeypatch.setattr(loop, "batch_order", lambda rng, n, shuffle: orders.append(real(rng, n, shuffle)) or orders[-1])
    x, y, *_ = mini
    mlp().fit(x[:100], y[:100], loss="ce", optimizer="sgd", epochs=3, batch_size=50, seed=1, verbose=0)
    assert len(orders) == 3 and all(sorted(o) == list(range(100)) for o in orders)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    orders.clear()
    mlp().fit(x[:100], y[:100], loss="ce", optimizer="sgd", epochs=2, batch_size=50, shuffle=False, verbose=0)
    assert all(np.array_equal(o, np.arange(100)) for o in orders)


def test_stepped_and_cosine_schedules():
    assert [bpx.StepLR(2, 0.5)(e, 1.0) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    cosine = bpx.CosineLR(4, min_lr=0.1)
    assert cosine(0, 1.0) == pytest.approx(1.0) and cosine(4, 1.0) == pytest.approx(0.1)
    assert cosine(2, 1.0) == pytest.approx(0.55)
    assert cosine(9, 1.0) == pytest.approx(0.1)  # clamped after its epochs
    with pytest.raises(bpx.BpxValueError, match="step_size must be >= 1"):
        bpx.StepLR(0)
    with pytest.raises(bpx.BpxTypeError, match=r"step_size must be an int, got 2\.7"):
        bpx.StepLR(2.7)


def test_fit_applies_the_schedule(mini):
    x, y, *_ = mini
    hist = mlp().fit(x[:200], y[:200], loss="ce", optimizer=bpx.SGD(lr=0.2), epochs=3, batch_size=50,
                     lr_schedule=bpx.StepLR(1, 0.5), verbose=0)
    assert hist["lr"] == [0.2, 0.1, 0.05]


def test_a_second_fit_continues_with_the_same_optimizer(mini):
    """Momentum carries over between fit calls on one network (as in PyTorch and Keras)."""
    x, y, *_ = mini
    one, two = mlp(), mlp()
    opt_one, opt_two = bpx.SGD(lr=0.05, momentum=0.9), bpx.SGD(lr=0.05, momentum=0.9)
    one.fit(x[:200], y[:200], loss="ce", optimizer=opt_one, epochs=2, batch_size=50, seed=1, shuffle=False,
            verbose=0)
    for _ in range(2):
        two.fit(x[:200], y[:200], loss="ce", optimizer=opt_two, epochs=1, batch_size=50, seed=1, shuffle=False,
                verbose=0)
    assert opt_one.iterations == opt_two.iterations == 8
    assert_close(one.layers[0].weight.value, two.layers[0].weight.value)


def test_mismatched_sample_counts_and_bad_labels(mini):
    x, y, *_ = mini
    with pytest.raises(bpx.ShapeError, match="x has 10 samples but targets has 9"):
        mlp().fit(x[:10], y[:9], loss="ce", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.BpxValueError, match=r"validation targets: class label 10 is outside"):
        mlp().fit(x[:10], y[:10], loss="ce", optimizer="sgd", verbose=0, validation_data=(x[:2], [0, 10]))


def test_fit_gathers_up_to_16_batches_of_at_most_about_8_mib():
    from bpx.training.data import DeviceData, chunk_batches

    def rows(*shape):
        return DeviceData(np.zeros((1, *shape), np.float32), None, None)

    assert chunk_batches(rows(784), 128) == 16  # 16 × 128 × 784 × 4 bytes = 6.4 MB
    assert chunk_batches(rows(784), 1024) == 2  # 8 MiB / (1024 × 3136 bytes) = 2.6
    assert chunk_batches(rows(784), 340) == 7  # 8 MiB / (340 × 3136 bytes) = 7.9
    assert chunk_batches(rows(3, 32, 32), 512) == 1
    assert chunk_batches(rows(1, 28, 28), 4096) == 1  # one batch over the limit (12.8 MB) still goes alone
    assert chunk_batches(rows(2), 1) == 16
