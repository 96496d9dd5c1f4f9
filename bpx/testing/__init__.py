"""Test helpers for bpx and for code built on it: dtype-aware closeness checks, the
(backend, device, dtype) parametrisation, finite-difference gradient checks and the layer
contract that every layer type must pass."""

from .gradcheck import GradcheckResult, gradcheck
from .params import ALL_CONFIGS, TOLERANCE_ULPS, BackendConfig, assert_close, availability, backend_params, tolerance

__all__ = ["ALL_CONFIGS", "TOLERANCE_ULPS", "BackendConfig", "GradcheckResult", "assert_close", "availability",
           "backend_params", "gradcheck", "tolerance"]
