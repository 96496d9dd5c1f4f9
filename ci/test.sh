#!/usr/bin/env bash
# The README's test command: install bpx with its test extras (PyTorch 2.13.0 CPU and JAX as
# test backends, and mpi4py with MPICH for the data-parallel tests), then run the whole suite
# on every installed backend/device/dtype.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check torch==2.13.0
python -m pip install --quiet --disable-pip-version-check -e ".[test,torch,jax,mpi]"
python -m pytest "$@"
