"""The Network's small public surface, counted by hand: feature counts, layer positions, the
training flag and the input checks of device arrays, the counters of a new network, which layers
backward must reach after a parameter is frozen, and malformed configurations."""

import numpy as np
import pytest

import bpx
from bpx.errors import ShapeError


def test_in_and_out_features_are_the_products_of_the_per_sample_shapes():
    net = bpx.Sequential(bpx.Conv2D(2, 3, 3), bpx.MaxPool2D(2), input_shape=(2, 7, 6), seed=0)
    assert net.input_shape == (2, 7, 6) and net.output_shape == (3, 2, 2)
    assert (net.in_features, net.out_features) == (2 * 7 * 6, 3 * 2 * 2)
    dense = bpx.Sequential(bpx.Dense(5, 4), seed=0)
    assert (dense.in_features, dense.out_features) == (5, 4)


def test_position_is_the_first_index_of_a_layer():
    shared, act = bpx.Dense(3, 3), bpx.Tanh()
    net = bpx.Sequential(shared, act, shared, seed=0)
    assert (net.position(shared), net.position(act)) == (0, 2 - 1)


def test_a_new_network_has_taken_no_steps_and_trained_no_epochs():
    net = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    assert (net.step_count, net.epochs_trained) == (0, 0)
    net.fit(np.eye(2), [0, 1], loss="ce", optimizer="sgd", epochs=3, batch_size=2, verbose=0)
    assert (net.step_count, net.epochs_trained) == (3, 3)


def test_forward_refuses_a_training_flag_that_is_not_a_bool():
    net = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    with pytest.raises(bpx.BpxTypeError, match="training must be True or False, got 1"):
        net.forward(np.ones((1, 2)), training=1)


def test_device_inputs_of_the_wrong_shape_are_refused():
    torch = pytest.importorskip("torch")
    net = bpx.Sequential(bpx.Dense(3, 2), backend="torch", dtype="float64", seed=0)
    with pytest.raises(ShapeError, match=r"x: expected shape \(n_samples, 3\), got \(4, 2\)"):
        net.prepare_inputs(torch.zeros((4, 2), dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"x: expected shape \(n_samples, 3\), got \(3,\)"):
        net.forward(torch.zeros(3, dtype=torch.float64))


def test_backward_reaches_the_first_layer_that_is_still_trainable_after_freezing():
    net = bpx.Sequential(bpx.Dense(2, 3), bpx.Tanh(), bpx.Dense(3, 2), seed=0)
    assert net.first_trainable_position() == 0
    for p in net.layers[0].parameters():
        p.trainable = False
    assert net.first_trainable_position() == 2
    net.layers[0].bias.trainable = True
    assert net.first_trainable_position() == 0
    for p in net.parameters():
        p.trainable = False
    assert net.first_trainable_position() == 3


@pytest.mark.parametrize("config", [[], {}, {"layers": "Dense"}, {"layers": []}, {"input_shape": [2]}])
def test_from_config_refuses_what_has_no_list_of_layers(config):
    with pytest.raises(bpx.BpxValueError, match=r"invalid network config: expected \{'layers': \[\.\.\.\]\}"):
        bpx.Sequential.from_config(config)


def test_layers_may_be_given_as_one_list_or_tuple():
    for layers in ([bpx.Dense(2, 3), bpx.Tanh()], (bpx.Dense(2, 3), bpx.Tanh())):
        net = bpx.Sequential(layers, seed=0)
        assert [type(layer) for layer in net.layers] == [bpx.Dense, bpx.Tanh] and net.output_shape == (3,)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (), (2.0,), (True,), "2", [-1]])
def test_input_shape_must_be_positive_ints(shape):
    with pytest.raises(ShapeError, match="input_shape must be a tuple of positive ints"):
        bpx.Sequential(bpx.Identity(), input_shape=shape)
    assert bpx.Sequential(bpx.Identity(), input_shape=[2, 3]).input_shape == (2, 3)


def test_load_state_dict_refuses_a_buffer_that_overflows_the_dtype():
    net = bpx.Sequential(bpx.Dense(2, 2), bpx.BatchNorm(2), seed=0)
    state = net.state_dict()
    name = next(k for k in state if k.endswith("running_var"))
    with pytest.raises(bpx.BpxValueError, match=rf"{name}: the value 1e\+300 overflows to inf in float32"):
        net.load_state_dict({**state, name: np.array([1.0, 1e300])})
    assert np.array_equal(net.state_dict()[name], state[name])


def test_contexts_of_one_network_share_its_cached_constants():
    net = bpx.Sequential(bpx.Dense(2, 2), seed=0)
    first, second = net.context(training=True), net.context(training=False)
    assert first.ones((3, 1)) is second.ones((3, 1))


def test_an_observer_sees_every_position_forward_then_backward():
    from bpx.nn.parameter import Gradients

    seen = []

    class Recorder:
        def forward(self, position, layer, x, y, saved):
            seen.append(("forward", position, type(layer).__name__, tuple(x.shape), tuple(y.shape)))

        def backward(self, position, layer, grad_y):
            seen.append(("backward", position, type(layer).__name__, tuple(grad_y.shape)))

    net = bpx.Sequential(bpx.Dense(2, 3), bpx.Tanh(), bpx.Dense(3, 1), dtype="float64", seed=0)
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(np.ones((4, 2))), ctx, observer=Recorder())
    net.backward(passed, net.backend.asarray(np.ones((4, 1))), Gradients(net.store), ctx, observer=Recorder())
    assert seen == [("forward", 0, "Dense", (4, 2), (4, 3)), ("forward", 1, "Tanh", (4, 3), (4, 3)),
                    ("forward", 2, "Dense", (4, 3), (4, 1)), ("backward", 2, "Dense", (4, 1)),
                    ("backward", 1, "Tanh", (4, 3)), ("backward", 0, "Dense", (4, 3))]


def test_to_keeps_the_dtype_unless_given_one_or_a_backend_object():
    net = bpx.Sequential(bpx.Dense(2, 2), dtype="float64", seed=0)
    assert net.to("numpy").backend.dtype_name == "float64"
    assert net.to("numpy", dtype="float32").backend.dtype_name == "float32"
    assert net.to(bpx.get_backend("numpy", dtype="float32")).backend.dtype_name == "float32"


def test_the_initial_loss_scale_is_2_to_the_15_in_float16_and_1_in_bfloat16():
    half = bpx.Sequential(bpx.Dense(2, 2), backend="numpy", dtype="float16", seed=0)
    assert float(bpx.to_host(half.loss_scale.scale.value)) == 32768.0
    assert float(bpx.to_host(half.loss_scale.good_steps.value)) == 0.0
    assert bpx.Sequential(bpx.Dense(2, 2), dtype="float32", seed=0).loss_scale is None
    pytest.importorskip("torch")
    brain = bpx.Sequential(bpx.Dense(2, 2), backend="torch", dtype="bfloat16", seed=0)
    assert float(bpx.to_host(brain.loss_scale.scale.value)) == 1.0


def test_backward_tells_the_first_trainable_layer_that_no_input_gradient_is_needed():
    from bpx.nn.parameter import Gradients

    net = bpx.Sequential(bpx.Tanh(), bpx.Dense(2, 3), bpx.Tanh(), bpx.Dense(3, 1), input_shape=(2,),
                         dtype="float64", seed=0)
    asked = {}
    for position, layer in enumerate(net.layers):
        def spy(saved, grad_y, grads, ctx, need_input_grad, _inner=layer.backward, _position=position):
            asked[_position] = need_input_grad
            return _inner(saved, grad_y, grads, ctx, need_input_grad)
        layer.backward = spy
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(np.ones((4, 2))), ctx)
    assert net.backward(passed, net.backend.asarray(np.ones((4, 1))), Gradients(net.store), ctx) is None
    assert asked == {3: True, 2: True, 1: False}  # layers[0] has nothing to train and is skipped


def test_a_parameter_shared_by_two_layers_is_listed_once_under_its_first_position():
    first, second = bpx.Dense(3, 3), bpx.Dense(3, 3)
    second.weight = first.weight  # tying one parameter, not a whole layer
    net = bpx.Sequential(first, bpx.Tanh(), second, seed=0)
    assert list(net.named_parameters()) == ["layers.0.weight", "layers.0.bias", "layers.2.bias"]
    assert net.n_parameters == 3 * 3 + 3 + 3 and len(net.parameters()) == 3


def test_from_config_refuses_a_layer_that_refers_to_itself_or_later():
    dense = {"type": "Dense", "in_features": 2, "out_features": 2}
    for ref in (1, 2, -1):
        with pytest.raises(bpx.BpxValueError, match=r"invalid network config: layers\[1\] refers to"):
            bpx.Sequential.from_config({"layers": [dense, {"same_as": ref}]})
    net = bpx.Sequential.from_config({"layers": [dense, {"type": "Tanh"}, {"same_as": 0}]}, seed=0)
    assert net.layers[2] is net.layers[0]


@pytest.mark.parametrize("cls, args", [(bpx.BatchNorm, (3,)), (bpx.LayerNorm, (3,)), (bpx.BatchNorm2D, (3,))])
def test_normalisation_config_records_frozen_parameters_and_clones_them(cls, args):
    layer = cls(*args, train_weight=False, train_bias=False)
    cfg = layer.config()
    assert cfg["train_weight"] is False and cfg["train_bias"] is False
    twin = layer.clone()
    assert (twin.weight.trainable, twin.bias.trainable) == (False, False)
    only_bias = cls(*args, train_bias=False)
    assert "train_weight" not in only_bias.config() and only_bias.config()["train_bias"] is False
    assert (only_bias.clone().weight.trainable, only_bias.clone().bias.trainable) == (True, False)
