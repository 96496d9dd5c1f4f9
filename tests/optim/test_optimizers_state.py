"""Optimizer state across a change of the trainable set, against torch.optim (PyTorch keeps the
momentum of the parameters that still train), per-parameter state views, state loaded with
missing entries, which network an optimizer is bound to, and float16 passes after an update."""

import numpy as np
import pytest

import bpx

W, B = np.array([[0.5], [-1.0]]), np.array([0.25])
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0]])
T = np.array([[1.0], [0.0], [-1.0]])


def torch_reference(steps_before, steps_after, lr, momentum):
    """SGD with momentum on E = ½ Σ (x·w + b − t)² / n; w frozen after ``steps_before`` steps."""
    torch = pytest.importorskip("torch")
    w, b = torch.tensor(W, requires_grad=True), torch.tensor(B, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr, momentum=momentum)
    x, t = torch.tensor(X), torch.tensor(T)
    for k in range(steps_before + steps_after):
        if k == steps_before:
            w.requires_grad_(False)
            w.grad = None
        opt.zero_grad()
        (0.5 * ((x @ w + b - t) ** 2).sum() / len(X)).backward()
        opt.step()
    return w.detach().numpy(), b.detach().numpy(), opt.state[b]["momentum_buffer"].numpy()


def test_momentum_of_the_still_trainable_parameters_survives_a_freeze():
    net = bpx.Sequential(bpx.Dense(2, 1, weight=W, bias=B), dtype="float64", seed=0)
    sgd = bpx.SGD(lr=0.1, momentum=0.9)
    for _ in range(2):
        net.train_step(X, T, "hse", sgd)
    net.layers[0].weight.trainable = False
    state = sgd.parameter_state(net.store)  # the pending re-layout is applied first
    assert list(state) == [net.layers[0].bias]
    for _ in range(2):
        net.train_step(X, T, "hse", sgd)
    w, b, velocity = torch_reference(2, 2, 0.1, 0.9)
    np.testing.assert_allclose(net.layers[0].weight.value, w, rtol=1e-14)
    np.testing.assert_allclose(net.layers[0].bias.value, b, rtol=1e-14)
    np.testing.assert_allclose(bpx.to_host(sgd.parameter_state(net.store)[net.layers[0].bias]["velocity"]),
                               velocity, rtol=1e-14)


def test_loaded_state_fills_missing_parameters_with_zeros():
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    adam = bpx.Adam()
    weight, bias = net.layers[0].weight, net.layers[0].bias
    adam.load_parameter_state(net.store, {bias: {"m": np.array([1.0]), "v": np.array([2.0])}}, 7)
    state = adam.parameter_state(net.store)
    assert adam.iterations == 7
    np.testing.assert_array_equal(bpx.to_host(state[weight]["m"]), np.zeros((2, 1)))
    np.testing.assert_array_equal(bpx.to_host(state[weight]["v"]), np.zeros((2, 1)))
    np.testing.assert_array_equal(bpx.to_host(state[bias]["m"]), [1.0])
    np.testing.assert_array_equal(bpx.to_host(state[bias]["v"]), [2.0])


def test_an_optimizer_knows_which_network_it_is_bound_to():
    a, b = (bpx.Sequential(bpx.Dense(2, 1), seed=s) for s in (0, 1))
    sgd = bpx.SGD(lr=0.1)
    assert not sgd.is_bound_elsewhere(a.store) and not sgd.is_bound_to(a.store)
    a.train_step(X, T, "hse", sgd)
    assert sgd.is_bound_to(a.store) and not sgd.is_bound_elsewhere(a.store)
    assert sgd.is_bound_elsewhere(b.store) and not sgd.is_bound_to(b.store)
    sgd.reset()
    assert not sgd.is_bound_elsewhere(b.store)


def test_float16_passes_see_each_update_of_the_master_weights():
    """Plain SGD on E = ½ (x·w + b − t)², by hand; every number is exact in float16."""
    w, b, x, t = np.array([[0.5], [0.25]]), np.array([0.0]), np.array([[1.0, 1.5]]), np.array([[0.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), backend="numpy", dtype="float16", seed=0)
    sgd = bpx.SGD(lr=0.25)
    for _ in range(2):
        net.predict(x)
        r = x @ w + b - t
        net.train_step(x, t, "hse", sgd)
        w, b = w - 0.25 * x.T @ r, b - 0.25 * r[0]
        assert net.predict(x).astype(np.float64).tolist() == (x @ w + b).tolist()


def test_loading_state_rebinds_an_optimizer_that_served_another_network():
    a, b = (bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=s) for s in (0, 1))
    sgd = bpx.SGD(lr=0.1, momentum=0.5)
    a.train_step(X, T, "hse", sgd)
    sgd.load_parameter_state(b.store, {}, 3)
    assert sgd.is_bound_to(b.store) and not sgd.is_bound_to(a.store) and sgd.iterations == 3
    b.train_step(X, T, "hse", sgd)  # no "holds the state of another network"
    assert sgd.iterations == 4


class Plain(bpx.Optimizer):
    """A user optimizer written against the base class: w ← w − lr·g."""

    def rule(self, w, g, state, lr, t, xp, scratch):
        return w - lr * g, state


def test_a_user_optimizer_reports_its_learning_rate_and_takes_plain_steps():
    opt = Plain(0.25)
    assert opt.hyperparameters() == {"lr": 0.25}
    net = bpx.Sequential(bpx.Dense(2, 1, weight=W, bias=B), dtype="float64", seed=0)
    net.train_step(X, T, "hse", opt)
    r = X @ W + B - T
    np.testing.assert_allclose(net.layers[0].weight.value, W - 0.25 * X.T @ r / len(X), rtol=1e-14)
    np.testing.assert_allclose(net.layers[0].bias.value, B - 0.25 * r.mean(axis=0), rtol=1e-14)


def test_sgd_by_name_is_the_textbook_step_with_lr_one_hundredth():
    net = bpx.Sequential(bpx.Dense(2, 1, weight=W, bias=B), dtype="float64", seed=0)
    net.train_step(X, T, "hse", "sgd")
    r = X @ W + B - T
    np.testing.assert_allclose(net.layers[0].weight.value, W - 0.01 * X.T @ r / len(X), rtol=1e-14)
    np.testing.assert_allclose(net.layers[0].bias.value, B - 0.01 * r.mean(axis=0), rtol=1e-14)


@pytest.mark.parametrize("make", [lambda: bpx.SGD(lr=0.5), lambda: bpx.SGD(lr=0.5, momentum=0.9),
                                  lambda: bpx.SGD(lr=0.5, nesterov=True, momentum=0.5), lambda: bpx.Adam()])
def test_update_leaves_the_gradient_it_is_given_unchanged_by_default(make):
    net = bpx.Sequential(bpx.Dense(2, 1), dtype="float64", seed=0)
    grads = np.arange(1.0, 4.0)
    make().update(net.store, grads)
    np.testing.assert_array_equal(grads, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_defaults_are_pytorchs(name):
    torch = pytest.importorskip("torch")
    ref = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)]).defaults
    opt = getattr(bpx, name)()
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps) == (ref["lr"], *ref["betas"], ref["eps"])
    assert opt.weight_decay == ref["weight_decay"]


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("beta", ["beta1", "beta2"])
def test_adam_betas_lie_in_0_1_with_1_refused(name, beta):
    cls = getattr(bpx, name)
    assert getattr(cls(**{beta: 0.0}), beta) == 0.0
    assert getattr(cls(**{beta: 0.99999}), beta) == 0.99999
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(bpx.BpxValueError, match=beta):
            cls(**{beta: bad})


def test_sgd_momentum_lies_in_0_1_with_1_refused_and_decays_are_non_negative():
    assert bpx.SGD(momentum=0.99999).momentum == 0.99999
    assert bpx.SGD(weight_decay=0.0).weight_decay == 0.0 and bpx.Adam(eps=0.0).eps == 0.0
    for kwargs in ({"momentum": 1.0}, {"momentum": -0.1}, {"weight_decay": -1e-3}):
        with pytest.raises(bpx.BpxValueError, match=next(iter(kwargs))):
            bpx.SGD(**kwargs)
    for kwargs in ({"eps": -1e-8}, {"weight_decay": -1e-3}):
        with pytest.raises(bpx.BpxValueError, match=next(iter(kwargs))):
            bpx.Adam(**kwargs)


def test_freezing_every_parameter_leaves_an_empty_state():
    net = bpx.Sequential(bpx.Dense(2, 1, weight=W, bias=B), dtype="float64", seed=0)
    sgd = bpx.SGD(lr=0.1, momentum=0.9)
    net.train_step(X, T, "hse", sgd)
    for p in net.parameters():
        p.trainable = False
    net.train_step(X, T, "hse", sgd)
    assert sgd.state["velocity"].shape == (0,) and sgd.parameter_state(net.store) == {}
    np.testing.assert_array_equal(net.layers[0].bias.value, B - 0.1 * (X @ W + B - T).mean(axis=0))


def test_a_mixed_precision_adam_step_is_bias_corrected_from_the_first_step():
    """Adam's first step from zero state is lr·ĝ/(√v̂ + ε) = lr·g/(|g| + ε) ≈ lr·sign(g) per value."""
    w, b, x, t = np.array([[0.5], [0.25]]), np.array([0.0]), np.array([[1.0, -1.0]]), np.array([[0.0]])
    net = bpx.Sequential(bpx.Dense(2, 1, weight=w, bias=b), backend="numpy", dtype="float16", seed=0)
    net.train_step(x, t, "hse", bpx.Adam(lr=0.125))
    g = np.sign((x @ w + b - t) * np.array([[1.0, -1.0, 1.0]]))  # signs of ∂E/∂w1, ∂E/∂w2, ∂E/∂b (r = 0.25)
    after = np.concatenate([net.layers[0].weight.value.ravel(), net.layers[0].bias.value]).astype(np.float64)
    np.testing.assert_allclose(after, np.array([0.5, 0.25, 0.0]) - 0.125 * g.ravel(), atol=1e-6)
