"""The classic 2-2-2 backpropagation worked example, computed by bpx and printed step by step.

    python examples/worked_example.py [--backend numpy|torch|jax|array_api_strict]

bpx does simultaneous gradient descent: every weight is updated from the gradients of the
same forward pass. (The often-quoted E = 0.291027924 after one step comes from an old version
of that tutorial's code, which updated the hidden weights through already-updated output
weights; the correct value is 0.291027774.)
"""

import argparse

import bpx
from bpx.architectures import WORKED_INPUTS, WORKED_LR, WORKED_TARGETS, worked_example


def textbook(w):
    """(in, out) weight matrix -> w values numbered target neuron by target neuron."""
    w = bpx.to_host(w)
    return [float(w[i, j]) for j in range(w.shape[1]) for i in range(w.shape[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy (default), torch, jax, array_api_strict, cupy")
    args = parser.parse_args()

    net = worked_example(backend=args.backend)
    loss, sgd = bpx.HalfSquaredError(), bpx.SGD(lr=WORKED_LR)
    x = net.prepare_inputs(WORKED_INPUTS)
    t = net.prepare_targets(WORKED_TARGETS, loss)
    dense1, sig1, dense2, sig2 = net.layers
    print(f"backend: {net.backend.describe()}")

    print("\nForward pass")
    ctx = net.context(training=False)
    net_h, _ = dense1.forward(x, ctx)
    out_h, _ = sig1.forward(net_h, ctx)
    net_o, _ = dense2.forward(out_h, ctx)
    out_o, _ = sig2.forward(net_o, ctx)
    for name, a, b in (("h", net_h, out_h), ("o", net_o, out_o)):
        for j in range(2):
            print(f"  net_{name}{j + 1} = {float(bpx.to_host(a)[0, j]):.12g}   "
                  f"out_{name}{j + 1} = {float(bpx.to_host(b)[0, j]):.12g}")
    e0 = float(bpx.to_host(loss.value(out_o, t)))
    print(f"  E_total = sum 1/2 (target - out)^2 = {e0:.12g}")

    net.train_step(x, t, loss, sgd)
    grads = textbook(dense1.weight.grad) + textbook(dense2.weight.grad)
    weights = textbook(dense1.weight.value) + textbook(dense2.weight.value)
    print("\nBackward pass: dE/dw")
    for k, g in enumerate(grads, start=1):
        print(f"  dE/dw{k} = {g:.12g}")
    print(f"\nUpdate w <- w - {WORKED_LR} * dE/dw (all weights at once)")
    for k, w in enumerate(weights, start=1):
        print(f"  w{k}+ = {w:.12g}")
    e1 = float(bpx.to_host(net.compute_loss(x, t, loss)))
    print(f"\nE after 1 step = {e1:.12g}  (not 0.291027924: see the docstring)")

    for _ in range(9_999):
        net.train_step(x, t, loss, sgd)
    out = bpx.to_host(net.forward(x))[0]
    e = float(bpx.to_host(net.compute_loss(x, t, loss)))
    print(f"E after 10000 steps = {e:.12g}, outputs {out[0]:.12g}, {out[1]:.12g}")


if __name__ == "__main__":
    main()
