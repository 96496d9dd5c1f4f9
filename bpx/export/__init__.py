"""Networks for other runtimes: :func:`export_onnx` (ONNX; needs ``pip install "bpx-backprop[onnx]"``)."""

from .onnx import export_onnx

__all__ = ["export_onnx"]
