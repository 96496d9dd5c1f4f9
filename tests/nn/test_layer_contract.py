"""Every layer type through the same contract (see :mod:`bpx.testing.contract`): gradients against
central differences on every backend and device, shared use, the meta device, checkpoint round
trips across backends and configuration round trips. A new layer gets these checks by adding one
case to CASES."""

import pytest

import bpx
from bpx.testing import backend_params
from bpx.testing.contract import (
    LayerCase,
    check_checkpoint,
    check_config,
    check_gradients,
    check_meta,
    check_shared_use,
)

CASES = [
    LayerCase("dense", lambda: bpx.Dense(5, 5), (5,)),
    LayerCase("dense-frozen-bias", lambda: bpx.Dense(5, 5, train_bias=False, bias=0.3), (5,)),
    LayerCase("dense-no-bias", lambda: bpx.Dense(5, 3, use_bias=False), (5,), shareable=False),
    # [W; b] is read as one view in training when both are trained alike (the bias trick); not when they differ
    LayerCase("dense-frozen", lambda: bpx.Dense(5, 4, train_weight=False, train_bias=False, bias=0.2), (5,),
              shareable=False, before=lambda: bpx.Dense(5, 5)),
    LayerCase("dense-frozen-weight", lambda: bpx.Dense(5, 4, train_weight=False), (5,), shareable=False,
              before=lambda: bpx.Dense(5, 5)),
    LayerCase("sigmoid", bpx.Sigmoid, (5,)),
    LayerCase("tanh", bpx.Tanh, (5,)),
    LayerCase("relu", bpx.ReLU, (5,)),
    LayerCase("leaky_relu", lambda: bpx.LeakyReLU(0.1), (5,)),
    LayerCase("softmax", bpx.Softmax, (5,)),
    LayerCase("identity", bpx.Identity, (5,)),
    # Regularisation (docs/regularisation.md). In training mode (which gradcheck uses, with the step fixed) Dropout
    # applies the mask of (seed 2, step 0, its position); a bias-free Dense feeds BatchNorm, since a bias before
    # batch normalisation has an exactly zero gradient (a relative-error check on it would compare noise).
    LayerCase("dropout", lambda: bpx.Dropout(0.3), (5,)),
    LayerCase("batch_norm", lambda: bpx.BatchNorm(5), (5,), before=lambda: bpx.Dense(5, 5, use_bias=False)),
    LayerCase("batch_norm-frozen-weight", lambda: bpx.BatchNorm(5, momentum=0.5, eps=1e-3, train_weight=False),
              (5,), before=lambda: bpx.Dense(5, 5, use_bias=False)),
    LayerCase("batch_norm_2d", lambda: bpx.BatchNorm2D(2), (2, 3, 3), before=lambda: bpx.LayerNorm(3)),
    LayerCase("layer_norm", lambda: bpx.LayerNorm(5), (5,)),
    LayerCase("layer_norm-sequence", lambda: bpx.LayerNorm(4, eps=1e-3), (3, 4), before=lambda: bpx.LayerNorm(4)),
    # Convolutional networks (issue #15): a 1×1 Conv2D in front makes each layer's input a function of trainable
    # weights, so the input gradient it passes back is checked too.
    LayerCase("conv2d", lambda: bpx.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=1), (2, 7, 6), shareable=False,
              before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("conv2d-same", lambda: bpx.Conv2D(2, 2, 3, padding=1), (2, 5, 4), before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("conv2d-frozen-weight-no-bias", lambda: bpx.Conv2D(2, 3, 2, stride=2, use_bias=False, train_weight=False),
              (2, 5, 5), shareable=False, before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("max_pool_2d", lambda: bpx.MaxPool2D(2), (2, 5, 4), shareable=False, before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("max_pool_2d-overlapping", lambda: bpx.MaxPool2D((3, 2), stride=(2, 1)), (2, 5, 4), shareable=False,
              before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("avg_pool_2d", lambda: bpx.AvgPool2D(2), (2, 5, 4), shareable=False, before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("avg_pool_2d-gapped", lambda: bpx.AvgPool2D(2, stride=3), (2, 7, 5), shareable=False,
              before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("global_avg_pool_2d", bpx.GlobalAvgPool2D, (2, 3, 4), shareable=False,
              before=lambda: bpx.Conv2D(2, 2, 1)),
    LayerCase("flatten", bpx.Flatten, (2, 3, 4), shareable=False, before=lambda: bpx.Conv2D(2, 2, 1)),
]
IDS = [case.name for case in CASES]
SHAREABLE = [case for case in CASES if case.shareable]
F64 = backend_params(dtypes=("float64",))


@pytest.mark.parametrize("cfg", F64)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients(case, cfg):
    check_gradients(case, cfg)


@pytest.mark.parametrize("cfg", F64)
@pytest.mark.parametrize("case", SHAREABLE, ids=[c.name for c in SHAREABLE])
def test_shared_use(case, cfg):
    check_shared_use(case, cfg)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_meta_device(case):
    pytest.importorskip("torch")
    check_meta(case)


@pytest.mark.parametrize("cfg", backend_params(dtypes=("float32",)))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_checkpoint_round_trip(case, cfg, tmp_path):
    check_checkpoint(case, cfg, tmp_path)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trip(case):
    check_config(case)
