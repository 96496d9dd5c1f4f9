"""Entry point of the benchmark suite: ``python -m benchmarks.mlp [options]``.

Times one epoch of MNIST (784-256-256-10 ReLU MLP, softmax cross-entropy, SGD, float32) for
bpx on NumPy/PyTorch/JAX and for the reference loops, round-robin, at batch sizes 128 and
1024; ``--case small|memory|profile|all`` runs the other cases. ``--help`` lists the options.
"""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main(default_case="mlp"))
