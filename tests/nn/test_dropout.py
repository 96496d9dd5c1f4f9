"""Dropout: inverted scaling, inference identity, masks keyed by (seed, step, position) and
bit-identical on every backend, the empirical keep rate, the train/infer switch through
train_step, fit and predict, resuming from a checkpoint, and the compiled JAX step.
(Statistics of the generator itself are tested in tests/test_random.py; gradients against central
differences on every backend in the layer contract test.)"""

import array_api_compat.numpy as XP
import numpy as np
import pytest

import bpx
from bpx.nn.dropout import fold_key
from bpx.random import keep_mask
from bpx.testing import assert_close, backend_params
from bpx.training.step import train_step

ALL = backend_params()


def mask_of(net, x, step=None):
    """The keep mask (host bool array) a training-mode forward pass of ``[Dropout]`` applied to ``x > 0``."""
    if step is not None:
        net.step_count = step
    return bpx.to_host(net.forward(x, training=True)) != 0.0


def dropout_net(rate=0.5, shape=(40,), seed=7, backend="numpy", **kw):
    return bpx.Sequential(bpx.Dropout(rate), backend=backend, seed=seed, input_shape=shape, **kw)


@pytest.mark.parametrize("cfg", ALL)
def test_training_output_is_bit_identical_on_every_backend(cfg):
    """Same (seed, step, position): the same mask everywhere, and the kept values scaled by 1/(1 − rate)."""
    rate, seed, step = 0.3, 11, 5
    x = np.random.default_rng(0).uniform(1.0, 2.0, size=(16, 3, 5)).astype(cfg.dtype)
    net = bpx.Sequential(bpx.Identity(), bpx.Dropout(rate), backend=cfg.name, device=cfg.device, dtype=cfg.dtype,
                         seed=seed, input_shape=(3, 5))
    net.step_count = step
    y = bpx.to_host(net.forward(x, training=True))
    expected = keep_mask(XP, "cpu", x.shape, 1.0 - rate, seed=seed, step=step, stream=1)  # position 1
    np.testing.assert_array_equal(y != 0.0, expected)
    assert_close(y, np.where(expected, x / (1.0 - rate), 0.0), dtype=cfg.dtype)
    np.testing.assert_array_equal(bpx.to_host(net.forward(x)), x)  # inference: the identity


def test_meta_device_runs_the_masked_pass():
    torch = pytest.importorskip("torch")
    net = dropout_net(backend="torch", device="meta")
    y = net.forward_pass(torch.empty((4, 40), device="meta"), net.context(training=True)).outputs
    assert y.device.type == "meta" and tuple(y.shape) == (4, 40)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_empirical_keep_rate_matches_one_minus_rate(rate):
    n = 400 * 1000
    kept = mask_of(dropout_net(rate, shape=(1000,)), np.ones((400, 1000)), step=3)
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1.0 - rate)) < 5 * sigma
    per_column = kept.mean(axis=0)  # every feature is dropped at the same rate
    assert abs(per_column.mean() - (1.0 - rate)) < 5 * sigma
    assert per_column.std() < 5 * np.sqrt(rate * (1 - rate) / 400)


def test_masks_repeat_for_the_same_key_and_differ_otherwise():
    x = np.ones((64, 50))
    net = dropout_net(0.5, shape=(50,), seed=3)
    a = mask_of(net, x, step=10)
    np.testing.assert_array_equal(mask_of(net, x, step=10), a)  # same (seed, step, position)
    np.testing.assert_array_equal(mask_of(dropout_net(0.5, shape=(50,), seed=3), x, step=10), a)  # a fresh net
    assert (mask_of(net, x, step=11) != a).mean() > 0.4  # another step: about half the bits differ
    assert (mask_of(dropout_net(0.5, shape=(50,), seed=4), x, step=10) != a).mean() > 0.4  # another seed
    two = bpx.Sequential(bpx.Dropout(0.5), bpx.Dropout(0.0), bpx.Dropout(0.5), backend="numpy", seed=3,
                         input_shape=(50,))
    ctx = two.context(training=True, step=10)
    passed = two.forward_pass(two.prepare_inputs(x), ctx)
    first, last = (bpx.to_host(s) != 0 for s in (passed.saved[0], passed.saved[2]))
    assert passed.saved[1] is None  # rate 0: no mask at all
    np.testing.assert_array_equal(first, a)  # position 0 of both networks
    assert (first != last).mean() > 0.4  # positions 0 and 2 draw different masks
    shared = bpx.Dropout(0.5)
    tied = bpx.Sequential(shared, shared, backend="numpy", seed=3, input_shape=(50,))
    passed = tied.forward_pass(tied.prepare_inputs(x), tied.context(training=True, step=10))
    assert (bpx.to_host(passed.saved[0]) != bpx.to_host(passed.saved[1])).mean() > 0.4  # per use, not per layer


def test_large_steps_and_seeds_are_folded_into_the_generators_range():
    x = np.ones((8, 40))
    np.testing.assert_array_equal(mask_of(dropout_net(), x, step=2**31 + 5), mask_of(dropout_net(), x, step=5))
    big = dropout_net(seed=2**40 + 9)
    assert fold_key(2**40 + 9) < 2**31 and fold_key(123) == 123
    assert 0 < mask_of(big, x, step=0).mean() < 1


@pytest.mark.parametrize("rate, error", [(1.0, bpx.BpxValueError), (-0.1, bpx.BpxValueError),
                                         (float("nan"), bpx.BpxValueError), ("0.5", bpx.BpxTypeError),
                                         (True, bpx.BpxTypeError)])
def test_rate_is_validated(rate, error):
    with pytest.raises(error, match="Dropout rate"):
        bpx.Dropout(rate)


def test_rate_zero_is_the_identity_in_both_modes():
    x = np.random.default_rng(0).normal(size=(5, 40))
    net = dropout_net(0.0, dtype="float64")
    np.testing.assert_array_equal(bpx.to_host(net.forward(x, training=True)), x)


def test_active_in_train_step_and_inactive_in_predict_and_evaluate():
    """train_step runs the step's mask (from net.step_count, which it then advances); predict and
    evaluate run in inference mode."""
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(8, 6)), rng.normal(size=(8, 6))
    net = bpx.Sequential(bpx.Dense(6, 6, weight=np.eye(6), bias=0.0), bpx.Dropout(0.5), backend="numpy",
                         dtype="float64", seed=5)
    predicted = bpx.to_host(net.predict(x))
    np.testing.assert_allclose(predicted, x)
    np.testing.assert_allclose(net.evaluate(x, t, loss="half_squared_error")["loss"],
                               0.5 * np.sum((x - t) ** 2) / 8)
    first = train_step(net, net.prepare_inputs(x), net.prepare_targets(t, "half_squared_error"),
                       bpx.HalfSquaredError(), bpx.SGD(lr=0.1)).outputs
    mask = keep_mask(XP, "cpu", (8, 6), 0.5, seed=5, step=0, stream=1)  # step 0, position 1
    np.testing.assert_allclose(bpx.to_host(first), np.where(mask, 2.0 * x, 0.0))
    grad = bpx.to_host(net.parameters()[0].grad)  # dropped units pass no gradient back
    np.testing.assert_allclose(grad, x.T @ np.where(mask, 2.0 * (np.where(mask, 2.0 * x, 0.0) - t) / 8, 0.0))
    second = train_step(net, net.prepare_inputs(x), net.prepare_targets(t, "half_squared_error"),
                        bpx.HalfSquaredError(), bpx.SGD(lr=0.1)).outputs
    assert net.step_count == 2
    np.testing.assert_array_equal(bpx.to_host(second) != 0.0,
                                  keep_mask(XP, "cpu", (8, 6), 0.5, seed=5, step=1, stream=1))


def train_steps(net, opt, batches):
    for xb, tb in batches:
        net.train_step(xb, tb, "softmax_cross_entropy", opt)


def test_resuming_from_a_checkpoint_reproduces_the_masks(tmp_path):
    """k steps, save, load, m more steps == k + m steps without interruption (bit for bit on NumPy)."""
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(16, 10)), rng.integers(0, 3, size=16)) for _ in range(6)]

    def make():
        return bpx.mlp([10, 32, 3], dropout=0.5, dtype="float64", seed=9)

    straight, opt = make(), bpx.Adam(lr=0.01)
    train_steps(straight, opt, batches)
    first, opt = make(), bpx.Adam(lr=0.01)
    train_steps(first, opt, batches[:3])
    path = first.save(tmp_path / "half.npz", opt)
    resumed, opt = bpx.load(path, with_optimizer=True)
    assert resumed.step_count == 3
    train_steps(resumed, opt, batches[3:])
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)
    restarted, opt = bpx.load(path, with_optimizer=True)
    restarted.step_count = 0  # the same weights and optimizer without the step count: other masks
    train_steps(restarted, opt, batches[3:])
    assert not np.array_equal(restarted.state_dict()["layers.0.weight"], straight.state_dict()["layers.0.weight"])


def test_compiled_jax_step_draws_the_same_masks_as_the_eager_loop():
    """Under jax.jit the step is a traced array; the masks (and so the training) match NumPy's."""
    pytest.importorskip("jax")
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(48, 6)), rng.integers(0, 3, size=48)
    states = {}
    for backend, compile in (("numpy", False), ("jax", True), ("jax", False)):
        net = bpx.mlp([6, 16, 16, 3], dropout=0.4, dtype="float64", seed=4, backend=backend)
        net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.1, momentum=0.9), epochs=2,
                batch_size=12, verbose=0, compile=compile)
        states[backend, compile] = net.state_dict()
    for key in (("jax", True), ("jax", False)):
        for name, value in states["numpy", False].items():
            assert_close(states[key][name], value, dtype="float64", factor=16, err_msg=f"{key} {name}")


def test_explain_refuses_dropout_and_batch_norm_clearly():
    for layers in ([bpx.Dense(2, 2), bpx.Sigmoid(), bpx.Dropout(0.5), bpx.Dense(2, 2)],
                   [bpx.Dense(2, 2), bpx.BatchNorm(2), bpx.Sigmoid(), bpx.Dense(2, 2)],
                   [bpx.LayerNorm(2), bpx.Dense(2, 2)]):
        net = bpx.Sequential(*layers, backend="numpy", dtype="float64", input_shape=(2,))
        with pytest.raises(bpx.BpxValueError, match=r"explain supports Dense layers each followed by at most one "
                                                    r"activation; layers\[\d\] \((Dropout|BatchNorm|LayerNorm)\)"):
            bpx.explain(net, [0.05, 0.10], [0.01, 0.99], "half_squared_error", lr=0.5)


def test_fold_key_xors_the_31_bit_chunks():
    """By hand: 3·2³¹ + 1 folds to 1 xor 3 = 2; 2³¹ − 1 is kept; 2⁶² + 2³¹ + 6 folds to
    6 xor (2³¹ + 1) = 2³¹ + 7, which folds again to 7 xor 1 = 6."""
    assert fold_key(3 * 2**31 + 1) == 2
    assert fold_key(2**31 - 1) == 2**31 - 1
    assert fold_key(2**31) == 1
    assert fold_key(2**62 + 2**31 + 6) == 6


def test_default_rate_is_one_half():
    assert bpx.Dropout().rate == 0.5
