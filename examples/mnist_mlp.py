"""An MLP on MNIST that exceeds 98 % test accuracy: 784-256-256-10, ReLU, softmax cross-entropy,
SGD with momentum 0.9 and a cosine learning-rate schedule, batch 128.

    python examples/mnist_mlp.py --data-dir ../shared/datasets/mnist [--backend torch] [--save mlp.npz]
"""

import argparse
import time

import bpx
from bpx.datasets import mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--backend")
    parser.add_argument("--device")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, help="train on the first N images only (a quick run)")
    parser.add_argument("--save", help="write the trained network to this checkpoint")
    args = parser.parse_args()

    (x, y), (x_test, y_test) = mnist(args.data_dir)
    x, y = x[:args.limit], y[:args.limit]
    net = bpx.Sequential(
        bpx.Dense(784, 256, init="he_uniform"), bpx.ReLU(),
        bpx.Dense(256, 256, init="he_uniform"), bpx.ReLU(),
        bpx.Dense(256, 10),
        backend=args.backend, device=args.device, dtype="float32", seed=0,
    )
    start = time.perf_counter()
    history = net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.05, momentum=0.9),
                      epochs=args.epochs, batch_size=128, seed=0, lr_schedule=bpx.CosineLR(args.epochs))
    seconds = time.perf_counter() - start
    if args.save:
        net.save(args.save)
    test = net.evaluate(x_test, y_test)  # the test images, once, after training
    print(f"MLP: test accuracy {100 * test['accuracy']:.2f}% (loss {test['loss']:.4f}) "
          f"after {history.epochs} epochs, {seconds:.1f}s on {net.backend.describe()}")


if __name__ == "__main__":
    main()
