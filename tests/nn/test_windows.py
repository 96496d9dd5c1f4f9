"""Window helpers through the layers that use them: a 1×1 convolution is a per-pixel matrix
product, so its input gradient is Wᵀ·g at every pixel (one window offset to scatter back)."""

import numpy as np

import bpx
from bpx.nn.parameter import Gradients


def test_a_1x1_convolution_input_gradient_is_the_per_pixel_transpose_product():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(3, 2, 1, 1))
    x, g = rng.normal(size=(4, 2, 3, 5)), rng.normal(size=(4, 3, 3, 5))
    net = bpx.Sequential(bpx.Conv2D(2, 3, 1, weight=weight, use_bias=False), input_shape=(2, 3, 5),
                         dtype="float64", seed=0)
    ctx = net.context(training=True)
    passed = net.forward_pass(net.prepare_inputs(x), ctx)
    np.testing.assert_allclose(passed.outputs, np.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x), rtol=1e-13)
    grad_x = net.backward(passed, net.backend.asarray(g, copy=True), Gradients(net.store), ctx,
                          need_input_grad=True)
    np.testing.assert_allclose(grad_x, np.einsum("oc,nohw->nchw", weight[:, :, 0, 0], g), rtol=1e-13)
