"""The classic softmax regression on MNIST: 784 -> 10, plain minibatch gradient descent,
learning rate 0.2, batch 100 (about 91-92 % test accuracy).

    python examples/mnist_softmax.py --data-dir ../shared/datasets/mnist [--backend torch] [--epochs 5]

Without --data-dir bpx looks in $BPX_DATA_DIR, then its cache, then downloads (verified).
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
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    (x, y), (x_test, y_test) = mnist(args.data_dir)
    net = bpx.Sequential(bpx.Dense(784, 10, init="zeros"), backend=args.backend, device=args.device,
                         dtype="float32")
    start = time.perf_counter()
    net.fit(x, y, loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.2), epochs=args.epochs, batch_size=100,
            seed=0, verbose=0)
    seconds = time.perf_counter() - start
    result = net.evaluate(x_test, y_test)
    print(f"softmax regression: test accuracy {100 * result['accuracy']:.2f}% (loss {result['loss']:.4f}) "
          f"after {args.epochs} epochs, {seconds:.1f}s on {net.backend.describe()}")


if __name__ == "__main__":
    main()
