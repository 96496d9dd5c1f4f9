"""Every failure path of fit leaves the network and optimizer in the documented state, compared
with a clean run stopped at the same point: the NaN guard (one batch per epoch and
check_every=1), an update that overflows the parameters, a failed jax.jit trace, an exception in
a callback, Ctrl-C once and twice; callbacks and optimizers reused across fits."""

import re
import signal

import numpy as np
import pytest

import bpx

#: These runs overflow the arithmetic on purpose; NumPy says so, and the tests check what bpx does next.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def regression_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x, x @ rng.normal(size=(4, 2))


def regression_net(seed=0):
    return bpx.Sequential(bpx.Dense(4, 8), bpx.Tanh(), bpx.Dense(8, 2), dtype="float64", seed=seed)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def diverging_fit(net, optimizer, **kwargs):
    x, t = regression_data()
    return net.fit(x, t, loss="mse", optimizer=optimizer, shuffle=False, verbose=0, **kwargs)


@pytest.mark.parametrize("batch_size, check_every", [(32, None), (8, 1)], ids=["one-batch-per-epoch", "check-every-1"])
def test_nan_guard_restores_the_last_finite_state(batch_size, check_every):
    net, opt = regression_net(), bpx.SGD(lr=3.0, momentum=0.9)
    with pytest.raises(bpx.NonFiniteError, match="restored to the last check") as info:
        diverging_fit(net, opt, epochs=200, batch_size=batch_size, check_every=check_every)
    epoch, batch = map(int, re.search(r"epoch (\d+), batch (\d+)", str(info.value)).groups())
    steps_done = (epoch - 1) * (32 // batch_size) + batch - 1  # the steps before the one whose loss was bad
    assert epoch > 1 or batch > 1
    assert all(np.all(np.isfinite(v)) for v in net.state_dict().values())
    clean, clean_opt = regression_net(), bpx.SGD(lr=3.0, momentum=0.9)
    x, t = regression_data()
    for _ in range(steps_done):  # the same updates, one at a time, stopped where the guard restored
        i = clean.step_count % (32 // batch_size)
        clean.train_step(x[i * batch_size:(i + 1) * batch_size], t[i * batch_size:(i + 1) * batch_size], "mse",
                         clean_opt)
    assert same_state(net, clean)
    assert opt.iterations == clean_opt.iterations == steps_done and net.step_count == steps_done
    assert np.array_equal(bpx.to_host(opt.state["velocity"]), bpx.to_host(clean_opt.state["velocity"]))


class Explode(bpx.SGD):
    """Plain SGD whose ``blow_up``-th update multiplies the weights by 1e300 (finite losses before it)."""

    def __init__(self, blow_up):
        super().__init__(lr=0.01)
        self.blow_up = blow_up

    def rule(self, w, g, state, lr, t, xp, scratch):
        w, state = super().rule(w, g, state, lr, t, xp, scratch)
        if self.iterations + 1 == self.blow_up:
            w *= 1e300
            w *= 1e300
        return w, state


def test_fit_never_returns_non_finite_parameters():
    """The last update overflows every weight while every loss (computed before it) is finite."""
    net = regression_net()
    with pytest.raises(bpx.NonFiniteError, match="parameters became non-finite during epoch 3"):
        diverging_fit(net, Explode(blow_up=3), epochs=3, batch_size=32)
    clean = regression_net()
    diverging_fit(clean, bpx.SGD(lr=0.01), epochs=2, batch_size=32)
    assert same_state(net, clean) and net.step_count == 2


class HostSync(bpx.Tanh):
    """A layer that reads a value back (forbidden in a compiled step)."""

    def forward(self, x, ctx):
        if float(x[0, 0]) > 1e9:  # fails under jax.jit: a traced value cannot be converted
            pass
        return super().forward(x, ctx)


def test_a_failed_jit_trace_leaves_the_network_usable():
    pytest.importorskip("jax")
    x, t = regression_data()
    net = bpx.Sequential(bpx.Dense(4, 8), HostSync(), bpx.Dense(8, 2), backend="jax", dtype="float32", seed=0)
    before = net.state_dict()
    opt = bpx.SGD(lr=0.01, momentum=0.9)
    with pytest.raises(Exception, match=r"[Cc]oncret|[Tt]racer"):
        net.fit(x, t, loss="mse", optimizer=opt, epochs=1, batch_size=8, compile=True, verbose=0)
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # concrete arrays, untouched
    assert opt.iterations == 0 and net.step_count == 0
    hist = net.fit(x, t, loss="mse", optimizer=opt, epochs=1, batch_size=8, verbose=0)  # eager works
    assert hist.epochs == 1 and opt.iterations == 4


class FailAt(bpx.Callback):
    def __init__(self, epoch):
        self.epoch, self.ended = epoch, False

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            raise RuntimeError("callback failed")

    def on_train_end(self, trainer):
        self.ended = True


def test_an_exception_in_a_callback_leaves_the_last_completed_epoch():
    net, opt, failing = regression_net(), bpx.Adam(lr=0.01), FailAt(1)
    with pytest.raises(RuntimeError, match="callback failed"):
        diverging_fit(net, opt, epochs=5, batch_size=8, callbacks=[failing])
    assert failing.ended
    clean, clean_opt = regression_net(), bpx.Adam(lr=0.01)
    diverging_fit(clean, clean_opt, epochs=2, batch_size=8)
    assert same_state(net, clean) and opt.iterations == clean_opt.iterations == 8


class InterruptAt(bpx.ReLU):
    """A ReLU that delivers Ctrl-C (SIGINT) ``times`` times to this process during its ``at``-th
    forward pass."""

    def __init__(self, at, times=1):
        self.at, self.times, self.calls = at, times, 0

    def forward(self, x, ctx):
        self.calls += 1
        if self.calls == self.at:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)
        return super().forward(x, ctx)


def mnist_like(n=640, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 20)), rng.integers(0, 10, size=n)


@pytest.fixture
def sigint_default():
    """These tests need SIGINT to be delivered (pytest may be started with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_after_the_current_batch_and_keeps_everything(sigint_default):
    x, y = mnist_like()
    relu = InterruptAt(5)
    net = bpx.Sequential(bpx.Dense(20, 16), relu, bpx.Dense(16, 10), seed=0)
    opt = bpx.SGD(lr=0.1)
    hist = net.fit(x, y, loss="ce", optimizer=opt, epochs=3, batch_size=64, shuffle=False, verbose=0)
    assert hist.interrupted and hist.partial_epoch and hist.epochs == 1
    assert relu.calls == 5 and len(hist.batch_losses) == 5 and opt.iterations == 5
    clean, clean_opt = bpx.Sequential(bpx.Dense(20, 16), bpx.ReLU(), bpx.Dense(16, 10), seed=0), bpx.SGD(lr=0.1)
    for b in range(5):
        clean.train_step(x[b * 64:(b + 1) * 64], y[b * 64:(b + 1) * 64], "ce", clean_opt)
    assert same_state(net, clean)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_a_second_ctrl_c_stops_at_once_and_restores_the_last_check(sigint_default):
    x, y = mnist_like()
    relu = InterruptAt(13, times=2)  # two signals during batch 3 of epoch 2 (10 batches per epoch)
    net = bpx.Sequential(bpx.Dense(20, 16), relu, bpx.Dense(16, 10), seed=0)
    opt = bpx.SGD(lr=0.1, momentum=0.9)
    with pytest.raises(KeyboardInterrupt):
        net.fit(x, y, loss="ce", optimizer=opt, epochs=3, batch_size=64, shuffle=False, verbose=0)
    clean = bpx.Sequential(bpx.Dense(20, 16), bpx.ReLU(), bpx.Dense(16, 10), seed=0)
    clean_opt = bpx.SGD(lr=0.1, momentum=0.9)
    clean.fit(x, y, loss="ce", optimizer=clean_opt, epochs=1, batch_size=64, shuffle=False, verbose=0)
    assert same_state(net, clean) and opt.iterations == 10 and net.step_count == 10
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_ignored_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        x, y = mnist_like(64)
        bpx.Sequential(bpx.Dense(20, 10), seed=0).fit(x, y, loss="ce", optimizer="sgd", verbose=0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_reused_early_stopping_starts_afresh_for_each_fit():
    x, t = regression_data()
    stopper = bpx.EarlyStopping(monitor="loss", patience=1)
    a = regression_net(seed=1)
    a.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=2.0), epochs=30, batch_size=32, callbacks=[stopper], verbose=0)
    b = regression_net(seed=2)
    before = b.state_dict()
    hist = b.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=1e-6), epochs=2, batch_size=32, callbacks=[stopper],
                 verbose=0)
    assert not hist.stopped_early and stopper.stopped_epoch is None
    assert not same_state(a, b)  # a's best weights were not restored into b
    assert not all(np.array_equal(before[k], v) for k, v in b.state_dict().items())


@pytest.mark.parametrize("patience", [0, 1, 3])
def test_early_stopping_patience_counts_epochs_without_improvement(patience):
    """The monitored loss improves for 2 epochs and then never again: training stops after
    exactly ``patience`` further epochs (Keras's convention)."""

    class Scripted(bpx.Callback):
        values = [5.0, 4.0, 3.0] + [3.5] * 10

        def on_epoch_end(self, trainer, epoch, logs):
            logs["loss"] = self.values[epoch]

    stopper = bpx.EarlyStopping(monitor="loss", patience=patience, restore_best=False)
    x, t = regression_data()
    hist = regression_net().fit(x, t, loss="mse", optimizer="sgd", epochs=10, batch_size=32,
                                callbacks=[Scripted(), stopper], verbose=0)
    assert hist.stopped_early and stopper.stopped_epoch == 2 + max(patience, 1)
    assert hist.epochs == stopper.stopped_epoch + 1


def test_early_stopping_restores_the_best_weights():
    x, t = regression_data()
    best_states = []

    class Record(bpx.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            best_states.append((logs["loss"], trainer.net.state_dict()))

    net = regression_net()
    hist = net.fit(x, t, loss="mse", optimizer=bpx.SGD(lr=0.9), epochs=40, batch_size=32, shuffle=False,
                   callbacks=[Record(), bpx.EarlyStopping(monitor="loss", patience=2)], verbose=0)
    assert hist.stopped_early
    best = min(best_states, key=lambda pair: pair[0])[1]
    assert all(np.array_equal(best[k], v) for k, v in net.state_dict().items())


def test_callbacks_are_checked_before_training():
    x, t = regression_data()
    net = regression_net()
    with pytest.raises(bpx.BpxValueError, match=r"cannot monitor 'val_loss'.*need validation_data"):
        net.fit(x, t, loss="mse", optimizer="sgd", callbacks=[bpx.EarlyStopping()], verbose=0)
    with pytest.raises(bpx.BpxValueError, match=r"only \{epoch\} is available"):
        bpx.ModelCheckpoint("model-{step}.npz")
    with pytest.raises(bpx.CheckpointWriteError, match="does not exist"):
        net.fit(x, t, loss="mse", optimizer="sgd", verbose=0,
                callbacks=[bpx.ModelCheckpoint("/nonexistent-folder/m{epoch}.npz", save_best_only=False)])
    assert net.step_count == 0
    with pytest.raises(bpx.BpxTypeError, match="callbacks must be a list"):
        net.fit(x, t, loss="mse", optimizer="sgd", callbacks=bpx.EarlyStopping(), verbose=0)
    with pytest.raises(bpx.BpxTypeError, match=r"callbacks\[0\] is None"):
        net.fit(x, t, loss="mse", optimizer="sgd", callbacks=[None], verbose=0)


def test_an_optimizer_of_another_network_is_refused_before_any_work():
    x, t = regression_data()
    a, b = regression_net(), regression_net(seed=1)
    opt = bpx.SGD(lr=0.1, momentum=0.9)
    a.fit(x, t, loss="mse", optimizer=opt, verbose=0)
    before = b.state_dict()
    with pytest.raises(bpx.StateError, match="another network"):
        b.fit(x, t, loss="mse", optimizer=opt, verbose=0)
    assert same_state(b, b) and all(np.array_equal(before[k], v) for k, v in b.state_dict().items())
