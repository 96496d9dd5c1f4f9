"""Entry point: ``python -m benchmarks.opcount [options]`` — tensor operations per training step
(PyTorch's dispatch mode) for fit and train_step, with SGD momentum and Adam, next to the time
per step; see ``benchmarks/cases/opcount.py``."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main(default_case="opcount"))
