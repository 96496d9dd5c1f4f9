"""MaxPool2D, AvgPool2D, GlobalAvgPool2D and Flatten against PyTorch (forward and input gradient) on
every backend and device; the max-pool tie rule; shapes and constructor errors.

The per-layer contract (gradcheck, meta, checkpoints, config) also runs from
``tests/nn/test_layer_contract.py``."""

import json

import numpy as np
import pytest
from cnn_reference import bpx_passes, case_matrix, torch_passes

import bpx
from bpx.errors import BpxTypeError, BpxValueError, ShapeError
from bpx.nn.layer import layer_from_config
from bpx.testing import assert_close, backend_params

torch = pytest.importorskip("torch")
F = torch.nn.functional
F64 = backend_params(dtypes=("float64",))

# (kernel_size, stride, (H, W)): tiling, tiling with a remainder, overlapping, gapped, non-square
POOL_CASES = [
    (2, None, (6, 4)),
    (2, None, (7, 5)),
    ((3, 2), (2, 1), (7, 6)),
    (2, 3, (8, 7)),
    ((2, 3), None, (6, 9)),
    (3, 1, (5, 5)),
]
POOL_IDS = [f"k{k}-s{s}-{h}x{w}" for k, s, (h, w) in POOL_CASES]
POOLS = {"max": (bpx.MaxPool2D, F.max_pool2d), "avg": (bpx.AvgPool2D, F.avg_pool2d)}


@pytest.mark.parametrize(("cfg", "case"), case_matrix(POOL_CASES, POOL_IDS, jax_fast=3))
@pytest.mark.parametrize("kind", sorted(POOLS))
def test_pool_matches_torch(kind, case, cfg):
    layer_class, reference = POOLS[kind]
    k, s, (h, w) = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, h, w))
    grad_out = rng.standard_normal(reference(torch.tensor(x), k, s).shape)
    y_ref, gx_ref, _ = torch_passes(lambda x: reference(x, k, s), x, {}, grad_out)
    y, gx, params = bpx_passes([layer_class(k, s)], x, grad_out, cfg)
    assert params == {}
    assert_close(y, y_ref, dtype=cfg.dtype, err_msg="outputs")
    assert_close(gx, gx_ref, dtype=cfg.dtype, err_msg="input gradient")


@pytest.mark.parametrize("cfg", F64)
def test_max_pool_ties_go_to_the_first_element_in_row_major_order(cfg):
    x = np.zeros((1, 1, 4, 6))
    x[0, 0, :2, :2] = [[1.0, 3.0], [3.0, 2.0]]  # tie between offsets (0, 1) and (1, 0): (0, 1) wins
    x[0, 0, :2, 2:4] = [[0.0, 0.0], [5.0, 5.0]]  # tie in the second row: (1, 0) wins
    x[0, 0, 2:, :] = 7.0  # constant windows: the top-left element wins
    grad_out = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    y, gx, _ = bpx_passes([bpx.MaxPool2D(2)], x, grad_out, cfg)
    expected = np.zeros_like(x)
    expected[0, 0, 0, 1] = 1.0
    expected[0, 0, 1, 2] = 2.0
    expected[0, 0, 0, 4] = 3.0  # the all-zero window
    expected[0, 0, 2, [0, 2, 4]] = [4.0, 5.0, 6.0]
    assert_close(y, [[[[3.0, 5.0, 0.0], [7.0, 7.0, 7.0]]]])
    assert_close(gx, expected)
    # PyTorch's CPU max_pool2d follows the same rule
    _, gx_ref, _ = torch_passes(lambda x: F.max_pool2d(x, 2), x, {}, grad_out)
    assert_close(gx, gx_ref)


@pytest.mark.parametrize("cfg", F64)
def test_overlapping_max_windows_add_their_gradients(cfg):
    x = np.full((1, 1, 3, 3), 2.0)  # every 2×2 window (stride 1) ties; each picks its top-left element
    _, gx, _ = bpx_passes([bpx.MaxPool2D(2, stride=1)], x, np.ones((1, 1, 2, 2)), cfg)
    assert_close(gx, [[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]])
    x[0, 0, 1, 1] = 9.0  # the centre wins all four windows
    _, gx, _ = bpx_passes([bpx.MaxPool2D(2, stride=1)], x, np.ones((1, 1, 2, 2)), cfg)
    assert_close(gx, [[[[0.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]])


@pytest.mark.parametrize("cfg", F64)
def test_global_avg_pool_and_flatten_match_torch(cfg):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5, 6))
    grad_out = rng.standard_normal((3, 4))
    y_ref, gx_ref, _ = torch_passes(lambda x: x.mean(dim=(2, 3)), x, {}, grad_out)
    y, gx, _ = bpx_passes([bpx.GlobalAvgPool2D()], x, grad_out, cfg)
    assert_close(y, y_ref)
    assert_close(gx, gx_ref)
    grad_out = rng.standard_normal((3, 120))
    y_ref, gx_ref, _ = torch_passes(lambda x: torch.flatten(x, 1), x, {}, grad_out)
    y, gx, _ = bpx_passes([bpx.Flatten()], x, grad_out, cfg)
    assert_close(y, y_ref)
    assert_close(gx, gx_ref)


@pytest.mark.parametrize("cfg", F64)
def test_flatten_after_conv_and_pool_keeps_torch_order(cfg):
    """Conv2D and the pools return NCHW views whose memory is batch-last; Flatten must still give
    torch.flatten's (c, h, w) feature order."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 6, 5))
    weight, bias = rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    grad_out = rng.standard_normal((2, 3 * 2 * 2))

    def reference(x, weight, bias):
        return torch.flatten(F.max_pool2d(torch.tanh(F.conv2d(x, weight, bias)), 2), 1)

    y_ref, gx_ref, gp_ref = torch_passes(reference, x, {"weight": weight, "bias": bias}, grad_out)
    layers = [bpx.Conv2D(2, 3, (3, 2), weight=weight, bias=bias), bpx.Tanh(), bpx.MaxPool2D(2), bpx.Flatten()]
    y, gx, gp = bpx_passes(layers, x, grad_out, cfg)
    assert_close(y, y_ref)
    assert_close(gx, gx_ref)
    assert_close(gp["layers.0.weight"], gp_ref["weight"])
    assert_close(gp["layers.0.bias"], gp_ref["bias"])


# ---------------------------------------------------------------------- shapes and arguments
def test_output_shapes_and_errors():
    assert bpx.MaxPool2D(2).output_shape((3, 7, 5)) == (3, 3, 2)
    assert bpx.AvgPool2D((3, 2), stride=(2, 1)).output_shape((1, 7, 6)) == (1, 3, 5)
    assert bpx.GlobalAvgPool2D().output_shape((8, 3, 3)) == (8,)
    assert bpx.Flatten().output_shape((8, 3, 3)) == (72,)
    assert bpx.Flatten().output_shape((5,)) == (5,)
    with pytest.raises(ShapeError, match=r"MaxPool2D\(3×3\): the 3×3 window is larger than its input 2×5"):
        bpx.MaxPool2D(3).output_shape((1, 2, 5))
    with pytest.raises(ShapeError, match=r"layers\[1\] AvgPool2D: AvgPool2D\(2×2, stride 1×1\).*larger.*1×1"):
        bpx.Sequential(bpx.Conv2D(1, 1, 3), bpx.AvgPool2D(2, stride=1), input_shape=(1, 3, 3))
    for layer in (bpx.MaxPool2D(2), bpx.AvgPool2D(2), bpx.GlobalAvgPool2D()):
        with pytest.raises(ShapeError, match=r"\(channels, height, width\), got \(28, 28\)"):
            layer.output_shape((28, 28))
    with pytest.raises(ShapeError, match="at least one axis"):
        bpx.Flatten().output_shape(())


def test_constructor_validation_and_config():
    with pytest.raises(BpxValueError, match="MaxPool2D kernel_size must be >= 1, got 0"):
        bpx.MaxPool2D(0)
    with pytest.raises(BpxTypeError, match="AvgPool2D stride must be an int or a pair"):
        bpx.AvgPool2D(2, stride="2")
    with pytest.raises(BpxValueError, match=r"AvgPool2D stride\[1\] must be >= 1"):
        bpx.AvgPool2D(2, stride=(1, 0))
    for layer, config in ((bpx.MaxPool2D(2), {"kernel_size": 2}), (bpx.MaxPool2D(2, stride=2), {"kernel_size": 2}),
                          (bpx.AvgPool2D((3, 2), stride=1), {"kernel_size": [3, 2], "stride": 1}),
                          (bpx.GlobalAvgPool2D(), {}), (bpx.Flatten(), {})):
        assert layer.config() == config
        twin = layer_from_config(type(layer).__name__, json.loads(json.dumps(config)))
        assert type(twin) is type(layer) and twin.config() == config
    assert repr(bpx.AvgPool2D((3, 2), stride=1)) == "AvgPool2D(kernel_size=[3, 2], stride=1)"
