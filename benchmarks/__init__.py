"""bpx benchmark suite: bpx against lean hand-written and framework reference loops.

Entry points (run from the repository root)::

    python -m benchmarks.mlp                  # MNIST MLP epochs, all CPU implementations
    python -m benchmarks.mlp --threads 1      # pinned single-thread comparison
    python -m benchmarks.mlp --case small     # 2-2-2 worked example, µs per train_step
    python -m benchmarks.mlp --case memory    # peak memory of one MNIST fit epoch
    python -m benchmarks.mlp --quick          # tiny configuration, seconds (used by CI)
    python -m benchmarks.small / benchmarks.memory / benchmarks.profile

This package must not import NumPy, PyTorch or JAX at import time: the entry points set the
thread environment first (see :mod:`benchmarks.threads`).
"""
