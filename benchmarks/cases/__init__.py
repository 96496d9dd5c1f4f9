"""The benchmark cases. Importing this package imports NumPy (and the cases import PyTorch/JAX
lazily), so the thread environment must be set before: go through :func:`benchmarks.cli.main`."""

from __future__ import annotations

import argparse
import importlib


def run_case(case: str, args: argparse.Namespace) -> None:
    """Run ``case`` (``mlp``, ``small``, ``memory`` or ``profile``) with the parsed options."""
    importlib.import_module(f"{__name__}.{case}").run(args)
