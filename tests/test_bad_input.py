"""Bad input to the public API (issue #11 A/B): each item gives a bpx error naming the argument,
value, shape or file — or, where the data is valid, works and gives the right numbers.

Every deliberate error is a :class:`bpx.BpxError`; ``BpxValueError``/``BpxTypeError``/``ShapeError``
are also ``ValueError``/``TypeError``, so the ``pytest.raises(ValueError)`` forms below check both.
Random bad values over every argument are in ``tests/property/test_bad_values.py``.
"""

import math
import warnings

import numpy as np
import pytest

import bpx
from bpx.testing import assert_close, backend_params
from bpx.training.step import train_step as step_on_device_arrays

EVERY_BACKEND = backend_params(dtypes=("float64",), gpu=False)


def small_net(config=None, **kw):
    where = dict(backend=config.name, device=config.device, dtype=config.dtype) if config else {"dtype": "float64"}
    return bpx.Sequential(bpx.Dense(4, 5), bpx.ReLU(), bpx.Dense(5, 3), seed=0, **{**where, **kw})


@pytest.fixture
def net():
    return small_net()


X = np.linspace(-1.0, 1.0, 8).reshape(2, 4)
LABELS = [0, 2]


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# ---------------------------------------------------------------------- shapes and names (ported)
def test_feature_count_that_does_not_match_the_first_dense(net):
    with pytest.raises(bpx.ShapeError, match=r"x: expected shape \(n_samples, 4\).*got \(2, 3\)"):
        net.forward(np.ones((2, 3)))
    with pytest.raises(bpx.ShapeError, match=r"for one sample use shape \(1, 4\)"):
        net.forward(np.ones(4))


def test_layers_that_do_not_chain():
    with pytest.raises(bpx.ShapeError, match=r"layers\[2\] Dense: Dense\(6, 3\) expects 6 input features per sample, "
                                             r"but its input has shape \(5,\)"):
        bpx.Sequential(bpx.Dense(4, 5), bpx.ReLU(), bpx.Dense(6, 3))
    with pytest.raises(bpx.ShapeError, match=r"cannot infer the input shape .*pass input_shape"):
        bpx.Sequential(bpx.ReLU(), bpx.Dense(4, 5))
    with pytest.raises(bpx.ShapeError, match=r"layers\[0\] Dense.*\(from input_shape=\(3,\)\)"):
        bpx.Sequential(bpx.Dense(4, 5), input_shape=(3,))
    with pytest.raises(bpx.BpxTypeError, match=r"layers\[1\] is a str"):
        bpx.Sequential(bpx.Dense(4, 5), "relu")
    with pytest.raises(bpx.BpxValueError, match="in_features must be >= 1, got 0"):
        bpx.Dense(0, 3)


@pytest.mark.parametrize("loss, targets, error, message", [
    ("half_squared_error", np.ones((2, 2)), bpx.ShapeError,
     r"half_squared_error: targets of shape \(2, 2\) do not fit the network's outputs \(3,\)"),
    ("mean_squared_error", np.ones(2), bpx.ShapeError, r"targets of shape \(2,\) do not fit"),
    ("half_squared_error", np.ones((3, 3)), bpx.ShapeError, "x has 2 samples but targets has 3"),
    ("softmax_cross_entropy", [0, 3], bpx.BpxValueError, r"targets: class label 3 is outside \[0, 3\)"),
    ("softmax_cross_entropy", [-1, 0], bpx.BpxValueError, r"targets: class label -1 is outside \[0, 3\)"),
    ("softmax_cross_entropy", [0.0, 1.0], bpx.BpxTypeError, r"class labels \(targets\) must be integers.*astype"),
    ("softmax_cross_entropy", [[0.5, -0.5, 1.0]] * 2, bpx.BpxValueError, "rows must be non-negative weights"),
    ("binary_cross_entropy", np.full((2, 3), 2.0), bpx.BpxValueError, r"targets must lie in \[0, 1\]"),
    ("mean_squared_error", np.ones((2, 3), dtype=bool), bpx.BpxTypeError, "targets must be numbers, got booleans"),
])
def test_targets_that_do_not_fit(net, loss, targets, error, message):
    with pytest.raises(error, match=message):
        net.train_step(X, targets, loss, bpx.SGD(lr=0.1))
    with pytest.raises(error, match=message):
        net.evaluate(X, targets, loss=loss)


def test_single_output_hint():
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    with pytest.raises(bpx.ShapeError, match=r"reshape them to \(n, 1\)"):
        net.train_step(np.ones((3, 2)), np.ones(3), "mse", "sgd")


def test_complex_or_text_input_is_rejected(net):
    with pytest.raises(bpx.BpxTypeError, match=r"x: expected real numbers, got complex numbers"):
        net.forward(np.ones((1, 4), dtype=np.complex128))
    with pytest.raises(bpx.BpxTypeError, match=r"x: expected real numbers, got strings"):
        net.forward([["a", "b", "c", "d"]])
    with pytest.raises(bpx.BpxTypeError, match=r"x: expected an array, list or number, got NoneType"):
        net.forward(None)


def test_unknown_names(net):
    with pytest.raises(bpx.BpxValueError, match="unknown loss 'crossentropy'"):
        net.train_step(np.ones((1, 4)), [0], "crossentropy", "sgd")
    with pytest.raises(bpx.BpxValueError, match="unknown optimizer 'sgdd'"):
        net.train_step(np.ones((1, 4)), [0], "softmax_cross_entropy", "sgdd")
    for optimizer in (["sgd"], {"lr": 0.1}, None):  # unhashable or absent: not a name
        with pytest.raises(bpx.BpxTypeError, match="optimizer must be a name"):
            net.fit(X, LABELS, loss="ce", optimizer=optimizer, verbose=0)
        with pytest.raises(bpx.BpxTypeError, match="optimizer must be a name"):
            net.train_step(X, LABELS, "ce", optimizer)


# ---------------------------------------------------------------------- 0 samples
@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_zero_samples(config):
    """fit, evaluate, train_step and compute_loss refuse 0 samples (a ZeroDivisionError before);
    predict and predict_classes return empty results shaped (0, k) and (0,)."""
    net = small_net(config)
    x0, y0 = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    with pytest.raises(bpx.BpxValueError, match="x has 0 samples"):
        net.fit(x0, y0, loss="ce", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.BpxValueError, match="validation x has 0 samples"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, validation_data=(x0, y0))
    with pytest.raises(bpx.BpxValueError, match="x has 0 samples"):
        net.evaluate(x0, y0, loss="ce")
    with pytest.raises(bpx.BpxValueError, match="x has 0 samples"):
        net.train_step(x0, y0, "ce", "sgd")
    with pytest.raises(bpx.BpxValueError, match="x has 0 samples"):
        net.compute_loss(x0, y0, "ce")
    assert net.step_count == 0
    for batch_size in (None, 2):
        out = net.predict(x0, batch_size=batch_size)
        assert tuple(out.shape) == (0, 3) and bpx.to_host(out).dtype == np.float64
    assert tuple(net.predict_classes(x0).shape) == (0,)


# ---------------------------------------------------------------------- malformed host data
def test_ragged_nested_lists(net):
    with pytest.raises(bpx.BpxValueError, match="x: nested lists of unequal lengths"):
        net.train_step([[1, 2, 3, 4], [1, 2]], LABELS, "ce", "sgd")
    with pytest.raises(bpx.BpxValueError, match="targets: nested lists of unequal lengths"):
        net.train_step(X, [[1.0, 0.0, 0.0], [1.0]], "mse", "sgd")
    with pytest.raises(bpx.BpxValueError, match="validation x: nested lists of unequal lengths"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, validation_data=([[1, 2, 3, 4], [1]], LABELS))
    with pytest.raises(bpx.BpxValueError, match="weight: nested lists of unequal lengths"):
        bpx.Dense(2, 2, weight=[[1.0], [1.0, 2.0]])


@pytest.mark.parametrize("config", [p for p in EVERY_BACKEND if p.values[0].name in ("torch", "array_api_strict")])
def test_object_or_string_arrays(config):
    """Object and string arrays get bpx errors naming the argument on PyTorch and array-api-strict
    (their library's own TypeError before)."""
    net = small_net(config)
    for bad in (np.array([[1, 2, 3, 4]], dtype=object), np.array([["1", "2", "3", "4"]]), [["a", "b", "c", "d"]]):
        with pytest.raises(bpx.BpxTypeError, match=r"^x: expected real numbers, got (Python objects|strings)"):
            net.predict(bad)
        with pytest.raises(bpx.BpxTypeError, match=r"^x: expected real numbers"):
            net.fit(bad, [0], loss="ce", optimizer="sgd", verbose=0)
    for bad in (np.array([0], dtype=object), np.array(["0"]), np.array([[0.0, 1.0, 0.0]], dtype=object)):
        with pytest.raises(bpx.BpxTypeError, match=r"^targets: expected real numbers"):
            net.train_step(np.ones((1, 4)), bad, "ce", "sgd")
        with pytest.raises(bpx.BpxTypeError, match=r"^targets: expected real numbers"):
            net.evaluate(np.ones((1, 4)), bad, loss="ce")


@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_big_endian_and_negative_stride_numpy_data_is_valid(config):
    """Big-endian and negative-stride NumPy arrays are valid data: x, labels, target rows, explicit
    weights and load_state_dict give exactly what native arrays give (PyTorch accepts them too)."""
    def odd(a):
        """``a``'s values as a big-endian array viewed with negative strides."""
        flipped = np.ascontiguousarray(a[::-1, ...].astype(a.dtype.newbyteorder(">")))
        return flipped[::-1, ...]

    x, labels, rows = X, np.array(LABELS), np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    assert odd(x).dtype.byteorder == ">" and odd(x).strides[0] < 0
    plain, weird = small_net(config), small_net(config)
    assert_close(weird.predict(odd(x)), plain.predict(x))
    assert float(bpx.to_host(weird.train_step(odd(x), odd(labels), "ce", "sgd"))) == pytest.approx(
        float(bpx.to_host(plain.train_step(x, labels, "ce", "sgd"))), rel=1e-14)
    assert weird.evaluate(odd(x), odd(rows), loss="mse") == pytest.approx(plain.evaluate(x, rows, loss="mse"))
    plain.fit(x, labels, loss="ce", optimizer="adam", epochs=2, verbose=0)
    weird.fit(odd(x), odd(labels), loss="ce", optimizer="adam", epochs=2, verbose=0,
              validation_data=(odd(x), odd(labels)))
    for name, value in plain.state_dict().items():
        assert_close(weird.state_dict()[name], value, err_msg=name)
    # explicit weights and load_state_dict
    w, b = np.arange(8.0).reshape(4, 2) / 10, np.array([0.5, -0.5])
    dense = bpx.Sequential(bpx.Dense(4, 2, weight=odd(w), bias=odd(b)), backend=config.name,
                           device=config.device, dtype="float64")
    np.testing.assert_array_equal(dense.state_dict()["layers.0.weight"], w)
    np.testing.assert_array_equal(dense.state_dict()["layers.0.bias"], b)
    state = {k: odd(v) for k, v in plain.state_dict().items()}
    weird.load_state_dict(state)
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(weird.state_dict()[name], value)


# ---------------------------------------------------------------------- fit's arguments
def test_malformed_validation_data(net):
    fit = dict(loss="ce", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.BpxTypeError, match=r"validation_data must be a pair .* got tuple of length 1"):
        net.fit(X, LABELS, validation_data=(X,), **fit)
    with pytest.raises(bpx.BpxTypeError, match=r"validation_data must be a pair .* got tuple of length 3"):
        net.fit(X, LABELS, validation_data=(X, LABELS, LABELS), **fit)
    with pytest.raises(bpx.BpxTypeError, match=r"validation_data must be a pair .* got ndarray"):
        net.fit(X, LABELS, validation_data=X, **fit)
    with pytest.raises(bpx.BpxTypeError, match=r"validation_data must be a pair .* got dict"):
        net.fit(X, LABELS, validation_data={"x": X, "targets": LABELS}, **fit)
    with pytest.raises(bpx.ShapeError, match="validation x has 2 samples but validation targets has 1"):
        net.fit(X, LABELS, validation_data=(X, [0]), **fit)
    with pytest.raises(bpx.BpxValueError, match=r"validation targets: class label 7 is outside \[0, 3\)"):
        net.fit(X, LABELS, validation_data=(X, [0, 7]), **fit)
    assert net.step_count == 0  # all checked before training
    history = net.fit(X, LABELS, validation_data=[X, LABELS], **fit)  # a list pair is fine
    assert math.isfinite(history["val_loss"][0])


def test_callbacks_none_or_a_single_callback(net):
    with pytest.raises(bpx.BpxTypeError, match=r"callbacks\[0\] is None, not a bpx Callback"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, callbacks=[None])
    with pytest.raises(bpx.BpxTypeError, match=r"callbacks must be a list, e\.g\. callbacks=\[bpx\.EarlyStopping"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, callbacks=bpx.EarlyStopping(monitor="loss"))
    with pytest.raises(bpx.BpxTypeError, match="callbacks must be a list of bpx callbacks, got str"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, callbacks="early")
    assert net.step_count == 0


def test_lr_schedule_name_verbose_word_and_bad_seeds(net):
    with pytest.raises(bpx.BpxValueError, match=r"lr_schedule='cosine': pass a schedule object, e\.g\. bpx\.CosineLR"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, lr_schedule="cosine")
    with pytest.raises(bpx.BpxValueError, match=r"verbose must be 0 \(silent\), 1 \(progress\) or 2.*got 'yes'"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose="yes")
    for seed, error in ((-1, bpx.BpxValueError), (1.5, bpx.BpxTypeError), ("a", bpx.BpxTypeError)):
        message = rf"seed must be a non-negative int or None, got {seed!r}"
        with pytest.raises(error, match=message):
            net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, seed=seed)
        with pytest.raises(error, match=message):
            bpx.Sequential(bpx.Dense(4, 3), seed=seed)
        with pytest.raises(error, match=message):
            bpx.mlp([4, 3], seed=seed)
    assert net.step_count == 0


def test_a_schedule_giving_a_bad_learning_rate():
    class Broken(bpx.Schedule):
        def __init__(self, lr):
            self.lr = lr

        def __call__(self, epoch, base_lr):
            return self.lr

    for lr, error, message in ((-0.5, bpx.BpxValueError, "must be >= 0.0, got -0.5"),
                               (float("nan"), bpx.BpxValueError, "must be finite, got nan"),
                               ("fast", bpx.BpxTypeError, "must be a number, got 'fast'")):
        net = small_net()
        expected = rf"the learning rate that lr_schedule Broken\(.*\) gives for epoch 0 {message}"
        with pytest.raises(error, match=expected):
            net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, lr_schedule=Broken(lr))
        assert net.step_count == 0


def test_batch_size_epochs_and_check_every(net):
    with pytest.raises(bpx.BpxTypeError, match="batch_size must be an int, got '2'"):
        net.predict(X, batch_size="2")
    with pytest.raises(bpx.BpxValueError, match="batch_size must be >= 1, got 0"):
        net.predict(X, batch_size=0)
    with pytest.raises(bpx.BpxValueError, match="batch_size must be >= 1, got 0"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, batch_size=0)
    with pytest.raises(bpx.BpxValueError, match="batch_size must be >= 1, got 0"):
        net.evaluate(X, LABELS, loss="ce", batch_size=0)
    with pytest.raises(bpx.BpxValueError, match="epochs must be >= 1, got 0"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, epochs=0)
    with pytest.raises(bpx.BpxValueError, match="check_every must be >= 1, got 0"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, check_every=0)
    with pytest.raises(bpx.BpxTypeError, match="distributed must be True, False or a bpx Communicator, got 'yes'"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, distributed="yes")
    assert net.step_count == 0
    # numpy integers are ints; a batch larger than the data is one batch
    assert_close(net.predict(X, batch_size=np.int64(1)), net.predict(X, batch_size=10**9))


def test_model_checkpoint_template_is_checked_before_training(net, tmp_path):
    for template, message in (("model-{step}.npz", r"uses \['step'\]; only \{epoch\} is available"),
                              ("model-{epoch[0]}.npz", "is not a valid template"),
                              ("model-{epoch:zz}.npz", "is not a valid template"),
                              ("model-{.npz", "is not a valid template")):
        with pytest.raises(bpx.BpxValueError, match=rf"ModelCheckpoint path .*{message}"):
            bpx.ModelCheckpoint(str(tmp_path / template))
    with pytest.raises(bpx.BpxTypeError, match="ModelCheckpoint path must be a file name"):
        bpx.ModelCheckpoint(None)
    missing = bpx.ModelCheckpoint(str(tmp_path / "missing" / "m{epoch}.npz"), save_best_only=False)
    with pytest.raises(bpx.CheckpointWriteError, match=r"cannot write checkpoint .*missing.*does not exist"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, callbacks=[missing])
    assert net.step_count == 0
    good = bpx.ModelCheckpoint(tmp_path / "m{epoch:02d}.npz", save_best_only=False)  # a Path works too
    net.fit(X, LABELS, loss="ce", optimizer="sgd", epochs=2, verbose=0, callbacks=[good])
    assert [p.name for p in good.saved] == ["m01.npz", "m02.npz"]


@pytest.mark.parametrize("make, error, message", [
    (lambda: bpx.StepLR(2.7), bpx.BpxTypeError, "StepLR step_size must be an int, got 2.7"),
    (lambda: bpx.Dense(2, 2, weight="abc"), bpx.BpxTypeError, r"weight: expected numbers, got str 'abc'"),
    (lambda: bpx.Dense(2, 2, weight={"w": 1}), bpx.BpxTypeError, "weight: expected numbers or an array, got dict"),
    (lambda: bpx.Dense(2, 2, bias=1j), bpx.BpxTypeError, "bias: expected numbers or an array, got complex"),
    (lambda: bpx.LeakyReLU("a"), bpx.BpxTypeError, "LeakyReLU negative_slope must be a number, got 'a'"),
    (lambda: bpx.SGD(lr="fast"), bpx.BpxTypeError, "SGD lr must be a number, got 'fast'"),
    (lambda: bpx.mlp(5), bpx.BpxTypeError, r"mlp: sizes must be a list of layer widths .* got 5"),
    (lambda: bpx.mlp([4, 3], activation=None), bpx.BpxValueError, "mlp activation: unknown activation None"),
    (lambda: bpx.mlp([4, 3], output_activation=[]), bpx.BpxValueError,
     r"mlp output_activation: unknown activation \[\]"),
    (lambda: bpx.Dense(10**30, 2), bpx.ShapeError, "has more elements than an array can hold"),
    (lambda: bpx.Sequential(bpx.Dense(2, 2), device=np.array([1, 2])), bpx.BackendError, "only the device 'cpu'"),
])
def test_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------------- class labels out of range
@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_host_labels_out_of_range_are_refused_at_every_call(config):
    net = small_net(config)
    for labels in ([0, 3], np.array([-1, 0]), np.array([0, 2**40])):
        bad = int(np.asarray(labels).max() if np.asarray(labels).max() >= 3 else np.asarray(labels).min())
        message = rf"softmax_cross_entropy: targets: class label {bad} is outside \[0, 3\) \(the network has 3 outputs"

        with pytest.raises(bpx.BpxValueError, match=message):
            net.train_step(X, labels, "ce", "sgd")
        with pytest.raises(bpx.BpxValueError, match=message):
            net.fit(X, labels, loss="ce", optimizer="sgd", verbose=0)
        with pytest.raises(bpx.BpxValueError, match=message):
            net.evaluate(X, labels, loss="ce")
        with pytest.raises(bpx.BpxValueError, match=message):
            net.compute_loss(X, labels, "ce")
    assert net.step_count == 0


@pytest.mark.parametrize("config", [p for p in EVERY_BACKEND if p.values[0].name != "numpy"])
def test_device_labels_out_of_range_are_checked_once_per_fit_and_evaluate(config, monkeypatch):
    net = small_net(config)
    labels = net.backend.asarray(np.array([0, 3]))
    reads = []
    real = bpx.host.arrays.to_host
    monkeypatch.setattr(bpx.host.arrays, "to_host", lambda a: reads.append(1) or real(a))
    with pytest.raises(bpx.BpxValueError, match=r"targets: class label 3 is outside \[0, 3\)"):
        net.evaluate(X, labels, loss="ce")
    assert len(reads) == 1  # one read-back of the labels
    with pytest.raises(bpx.BpxValueError, match=r"targets: class label 3 is outside \[0, 3\)"):
        net.fit(X, labels, loss="ce", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.BpxValueError, match=r"validation targets: class label 3 is outside \[0, 3\)"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, validation_data=(X, labels))
    assert net.step_count == 0


@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_train_step_with_device_labels_out_of_range_gives_all_zero_rows(config):
    """Documented: device labels are not range-checked per step (no host synchronisation); a label
    outside [0, k) gets an all-zero one-hot row — it adds nothing to the loss and nothing to the
    gradient — identically on every backend. Checked by hand for one Dense layer and plain SGD.
    (On NumPy, Sequential.train_step sees NumPy labels as host data, which are checked.)"""
    w = np.array([[0.2, -0.1, 0.4], [0.0, 0.3, -0.2], [0.1, 0.1, 0.1], [-0.3, 0.2, 0.0]])
    b = np.array([0.05, -0.05, 0.0])
    x = np.array([[1.0, 2.0, -1.0, 0.5], [0.3, -0.7, 0.2, 1.0], [-1.0, 0.0, 0.5, 0.5]])
    labels = np.array([2, 3, -1])  # one valid label, one too large, one negative
    lr = 0.5
    z = x @ w + b
    n = len(labels)
    valid = (labels >= 0) & (labels < 3)
    one_hot = np.zeros((n, 3))
    one_hot[valid, labels[valid]] = 1.0
    expected_loss = -(one_hot * log_softmax(z)).sum() / n  # the valid row's term only, over all 3 samples
    softmax = np.exp(log_softmax(z))
    grad_z = (softmax * one_hot.sum(axis=1, keepdims=True) - one_hot) / n  # zero rows for the bad labels
    expected_w, expected_b = w - lr * x.T @ grad_z, b - lr * grad_z.sum(axis=0)

    def net():
        return bpx.Sequential(bpx.Dense(4, 3, weight=w, bias=b), backend=config.name, device=config.device,
                              dtype="float64", seed=0)

    nets = [net(), net()]
    device_labels = nets[0].backend.asarray(labels)
    # the step on prepared device arrays, as fit runs it (every backend, NumPy included)
    result = step_on_device_arrays(nets[0], nets[0].prepare_inputs(x), device_labels, bpx.SoftmaxCrossEntropy(),
                                   bpx.SGD(lr))
    losses = [float(bpx.to_host(result.loss))]
    if config.name == "numpy":
        with pytest.raises(bpx.BpxValueError, match=r"class label -1 is outside \[0, 3\)"):
            nets[1].train_step(x, device_labels, "ce", bpx.SGD(lr))  # NumPy labels are host data: checked
        nets = nets[:1]
    else:
        losses.append(float(bpx.to_host(nets[1].train_step(x, device_labels, "ce", bpx.SGD(lr)))))
    for loss, trained in zip(losses, nets, strict=True):
        assert loss == pytest.approx(expected_loss, rel=1e-13)
        state = trained.state_dict()
        assert_close(state["layers.0.weight"], expected_w)
        assert_close(state["layers.0.bias"], expected_b)


# ---------------------------------------------------------------------- non-finite values
def test_non_finite_host_inputs_and_targets_are_named_with_the_index(net):
    x = X.copy()
    x[1, 2] = np.nan
    rows = np.zeros((2, 3))
    rows[0, 1] = -np.inf
    for call in (lambda: net.predict(x), lambda: net.train_step(x, LABELS, "ce", "sgd"),
                 lambda: net.fit(x, LABELS, loss="ce", optimizer="sgd", verbose=0),
                 lambda: net.evaluate(x, LABELS, loss="ce")):
        with pytest.raises(bpx.BpxValueError, match=r"^x holds a non-finite value \(nan\) at index \(1, 2\)"):
            call()
    for call in (lambda: net.train_step(X, rows, "mse", "sgd"), lambda: net.evaluate(X, rows, loss="mse"),
                 lambda: net.fit(X, rows, loss="mse", optimizer="sgd", verbose=0)):
        with pytest.raises(bpx.BpxValueError, match=r"^targets holds a non-finite value \(-inf\) at index \(0, 1\)"):
            call()
    with pytest.raises(bpx.BpxValueError, match=r"^validation x holds a non-finite value \(nan\) at index \(1, 2\)"):
        net.fit(X, LABELS, loss="ce", optimizer="sgd", verbose=0, validation_data=(x, LABELS))
    assert net.step_count == 0


@pytest.mark.parametrize("config", [p for p in EVERY_BACKEND if p.values[0].name != "numpy"])
def test_non_finite_device_data_is_refused_once_per_fit_and_evaluate(config, monkeypatch):
    net = small_net(config)
    x = X.copy()
    x[1, 2] = np.inf
    rows = np.zeros((2, 3))
    rows[0, 1] = np.nan
    dx, drows = net.backend.asarray(x), net.backend.asarray(rows)
    with pytest.raises(bpx.BpxValueError, match=r"^x holds a non-finite value \(inf\) at index \(1, 2\)"):
        net.fit(dx, LABELS, loss="ce", optimizer="sgd", verbose=0)
    with pytest.raises(bpx.BpxValueError, match=r"^x holds a non-finite value \(inf\) at index \(1, 2\)"):
        net.evaluate(dx, LABELS, loss="ce")
    for loss in ("mse", "bce"):
        with pytest.raises(bpx.BpxValueError, match=r"^targets holds a non-finite value \(nan\) at index \(0, 1\)"):
            net.evaluate(X, drows, loss=loss)
        with pytest.raises(bpx.BpxValueError, match=r"^validation targets holds a non-finite value \(nan\)"):
            net.fit(X, np.zeros((2, 3)), loss=loss, optimizer="sgd", verbose=0, validation_data=(X, drows))
    assert net.step_count == 0
    with pytest.raises(bpx.BpxValueError, match=r"softmax_cross_entropy: targets rows must be non-negative"):
        net.evaluate(X, net.backend.asarray(np.full((2, 3), -1.0)), loss="ce")
    # finite device data: one read-back checks x and the targets together
    reads = []
    real = bpx.training.data.to_host
    monkeypatch.setattr(bpx.training.data, "to_host", lambda a: reads.append(1) or real(a))
    net.evaluate(net.backend.asarray(X), net.backend.asarray(np.zeros((2, 3))), loss="mse")
    assert len(reads) == 1


@pytest.mark.parametrize("config", [p for p in EVERY_BACKEND if p.values[0].name != "numpy"])
def test_finite_device_data_whose_sum_overflows_is_accepted(config):
    """The device check sums the data (a finite sum has finite terms); finite values whose sum
    overflows to inf are then checked element by element and accepted, not refused."""
    from bpx.training.data import prepare_data

    net = small_net(config)
    big = float(np.finfo(np.float32).max) / 2
    x = np.full((2, 4), big)
    with np.errstate(over="ignore"):
        assert np.isinf(x.astype(np.float32).sum(dtype=np.float32)) and np.isfinite(x.astype(np.float32)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bpx's own check draws no overflow warning
        data = prepare_data(net, bpx.get_loss("ce"), net.backend.asarray(x), LABELS, ["accuracy"])
    assert float(bpx.to_host(data.x)[1, 3]) == pytest.approx(big)


@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_large_finite_host_data_draws_no_warning(config):
    """Host data whose sum overflows is checked exactly, without NumPy's overflow warning."""
    net = small_net(config)
    x = np.full((2, 4), float(np.finfo(np.float32).max) / 2, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = net.prepare_inputs(x)
    assert float(bpx.to_host(out)[0, 0]) == pytest.approx(float(x[0, 0]))


def test_values_that_overflow_the_network_dtype_are_refused():
    """float64 host data beyond float32's range would become inf: refused naming the array."""
    net = small_net(dtype="float32")
    with pytest.raises(bpx.BpxValueError, match=r"^x: the value 1e\+39 overflows to inf in float32"):
        net.predict([[1e39, 0.0, 0.0, 0.0]])
    with pytest.raises(bpx.BpxValueError, match=r"^targets: the value 1e\+39 overflows to inf in float32"):
        net.evaluate(X, np.full((2, 3), -1e39), loss="mse")
    assert tuple(small_net(dtype="float64").predict([[1e39, 0.0, 0.0, 0.0]]).shape) == (1, 3)  # fine in float64


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_loss_that_overflows_in_evaluate_raises_instead_of_returning_inf():
    net = bpx.Sequential(bpx.Dense(2, 1, weight=1e20), dtype="float32", seed=0)
    with pytest.raises(bpx.NonFiniteError, match="the mean_squared_error over 1 samples is inf: the outputs overflow"):
        net.evaluate([[1e20, 1e20]], [[0.0]], loss="mse")


# ---------------------------------------------------------------------- valid data of other kinds
@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_integer_and_boolean_inputs_are_cast_to_the_network_dtype(config):
    net = small_net(config)
    ints = np.array([[0, 1, 2, 255]], dtype=np.uint8)
    out = net.forward(ints)
    assert bpx.to_host(out).dtype == np.float64
    assert_close(out, net.forward(ints.astype(np.float64)))  # values unchanged: 255 stays 255
    assert_close(net.forward(np.array([[True, False, True, True]])), net.forward([[1.0, 0.0, 1.0, 1.0]]))
    device_ints = net.backend.asarray(np.array([[3, -2, 0, 7]]))
    assert_close(net.predict(device_ints), net.predict([[3.0, -2.0, 0.0, 7.0]]))
    assert net.evaluate(ints, [1], loss="ce") == pytest.approx(net.evaluate(ints.astype(float), [1], loss="ce"))


def test_torch_tensors_that_require_grad_are_accepted_and_never_modified():
    torch = pytest.importorskip("torch")
    net, twin = (small_net(bpx.testing.BackendConfig("torch", "cpu", "float64")) for _ in range(2))
    x = torch.tensor(X, requires_grad=True)
    rows = torch.tensor([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    x_before, rows_before = x.detach().clone(), rows.detach().clone()
    assert_close(net.predict(x), twin.predict(X))
    assert float(net.train_step(x, rows, "ce", "sgd")) == pytest.approx(float(twin.train_step(X, rows_before.numpy(),
                                                                                              "ce", "sgd")))
    net.fit(x, rows, loss="mse", optimizer="adam", epochs=2, batch_size=1, verbose=0, validation_data=(x, rows))
    twin.fit(X, rows_before.numpy(), loss="mse", optimizer="adam", epochs=2, batch_size=1, verbose=0)
    assert net.evaluate(x, rows)["loss"] == pytest.approx(twin.evaluate(X, rows_before.numpy())["loss"])
    assert x.requires_grad and rows.requires_grad and x.grad is None and rows.grad is None
    assert torch.equal(x.detach(), x_before) and torch.equal(rows.detach(), rows_before)
    assert not net.predict(x).requires_grad  # bpx builds no autograd graph


@pytest.mark.parametrize("config", EVERY_BACKEND)
def test_arrays_of_another_library_or_device_say_how_to_move_them(config):
    net = small_net(config)
    if config.name != "torch":
        library, foreign = "torch", pytest.importorskip("torch").asarray(X)
    else:
        library, foreign = "array_api_strict", pytest.importorskip("array_api_strict").asarray(X)
    message = (rf"x is a {library} array but the network uses the '{config.name}' backend; convert it first, "
               r"e\.g\. net\.backend\.asarray\(bpx\.to_host\(x\)\)")
    for call in (lambda: net.predict(foreign), lambda: net.train_step(foreign, LABELS, "ce", "sgd"),
                 lambda: net.fit(foreign, LABELS, loss="ce", optimizer="sgd", verbose=0)):
        with pytest.raises(bpx.DeviceMismatchError, match=message):
            call()
    moved = net.backend.asarray(bpx.to_host(foreign))  # what the message says works
    assert_close(net.predict(moved), net.predict(X))
    if config.name == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")
        other = xp.Device("CPU_DEVICE") if config.device == "device1" else xp.Device("device1")
        with pytest.raises(bpx.DeviceMismatchError, match=r"x lives on device .* but the network is on .*move it "
                                                          r"with net\.backend\.asarray\(bpx\.to_host\(x\)\)"):
            net.forward(xp.asarray(X, device=other))
        with pytest.raises(bpx.DeviceMismatchError, match="targets lives on device"):
            net.train_step(X, xp.asarray(np.ones((2, 3)), device=other), "mse", "sgd")
