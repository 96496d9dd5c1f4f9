"""``export_onnx``: a bpx network as an ONNX model, in inference mode.

Two routes build the graph (``method=``):

* ``"nodes"`` writes one standard ONNX node pattern per layer type with the ``onnx`` package's
  helper API: ``Gemm`` (Dense), ``Relu``/``LeakyRelu``/``Sigmoid``/``Tanh``/``Softmax``/
  ``Identity``, ``Conv`` (Conv2D), ``MaxPool``/``AveragePool``/``GlobalAveragePool``,
  ``Flatten``, ``BatchNormalization`` (BatchNorm, BatchNorm2D: running statistics),
  ``LayerNormalization`` (LayerNorm, opset ≥ 17); Dropout becomes ``Identity``. The batch axis
  is symbolic (``batch``), the graph small and standard, so runtimes and converters (onnxruntime,
  TensorRT, OpenVINO) fuse it as they do PyTorch's exports.
* ``"ndonnx"`` runs bpx's own, unchanged forward code on `ndonnx <https://github.com/Quantco/ndonnx>`_
  arrays (an Array API namespace whose operations record an ONNX graph): the network's layers are
  cloned onto a :class:`bpx.Backend` whose ``xp`` is ndonnx and traced in inference mode. It
  exports any layer written against the Array API, custom ones included, but the graph is larger
  (bpx's numerically careful sigmoid, im2col convolutions) and layers that read the batch size
  (Conv2D, pooling, Flatten) need a fixed ``batch_size``.
* ``"auto"`` (the default) uses ``"nodes"`` when every layer has a pattern, else ``"ndonnx"``.

The model's input is ``input`` ``(batch, *input_shape)`` and its output ``output``
``(batch, *output_shape)``: logits for the logit losses, as :meth:`bpx.Sequential.predict`. The
model's metadata records bpx's version, the architecture and the loss. Needs the ``onnx``
extra: ``pip install "bpx-backprop[onnx]"`` (onnx, onnxruntime, ndonnx).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import Backend
from ..checks import check_choice, check_int
from ..errors import BpxError, BpxTypeError, BpxValueError, MissingDependencyError
from ..host.files import atomic_write, check_writable
from ..nn.activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ..nn.conv import Conv2D
from ..nn.dense import Dense
from ..nn.dropout import Dropout
from ..nn.layer import Context, Layer
from ..nn.network import Network
from ..nn.norm import BatchNorm, BatchNorm2D, LayerNorm
from ..nn.parameter import ParameterStore
from ..nn.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from ..nn.reshape import Flatten
from ..version import DISTRIBUTION, __version__

__all__ = ["METHODS", "add_cli_parser", "check_with_onnxruntime", "export_onnx", "main", "ndonnx_backend", "run_cli",
           "supported_layers"]

METHODS = ("auto", "nodes", "ndonnx")
DEFAULT_OPSET = 17
INPUT, OUTPUT, BATCH = "input", "output", "batch"
INSTALL = f'pip install "{DISTRIBUTION}[onnx]"'


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(f"ONNX export needs the package {module.split('.')[0]!r} ({err}); install it "
                                     f"with: {INSTALL}") from None


# ---------------------------------------------------------------------- the public function
def export_onnx(net: Network, path: str | os.PathLike[str], *, method: str = "auto", opset: int = DEFAULT_OPSET,
                dtype: str = "float32", batch_size: int | None = None) -> Path:
    """Write ``net`` to ``path`` as an ONNX model of its inference-mode forward pass; returns the path.

    ``method``: ``"nodes"``, ``"ndonnx"`` or ``"auto"`` (see the module docstring). ``opset``: the
    ONNX opset of the ``"nodes"`` route (LayerNorm needs ≥ 17). ``dtype``: ``"float32"`` (the
    default, what runtimes support everywhere) or ``"float64"``. ``batch_size``: a fixed batch
    size instead of the symbolic ``batch`` axis. The file is written atomically. Raises
    :class:`bpx.MissingDependencyError` without the ``onnx`` extra and :class:`bpx.BpxValueError`
    for a layer the chosen method cannot export.
    """
    if not isinstance(net, Network):
        raise BpxTypeError(f"export_onnx needs a bpx network, got {type(net).__name__}")
    check_choice(method, "export_onnx method", METHODS)
    check_choice(dtype, "export_onnx dtype", ("float32", "float64"))
    opset = check_int(opset, "export_onnx opset", low=13)
    if batch_size is not None:
        batch_size = check_int(batch_size, "export_onnx batch_size")
    if not isinstance(path, (str, os.PathLike)):
        raise BpxTypeError(f"export_onnx path must be a file name (str or Path), got {path!r}")
    path = check_writable(Path(path), "ONNX model")
    net.backend.require_data(f"exporting {str(path)!r}")
    onnx = _require("onnx")
    unsupported = [f"layers[{i}] {type(layer).__name__}" for i, layer in enumerate(net.layers)
                   if type(layer) not in _PATTERNS]
    if method == "auto":
        method = "ndonnx" if unsupported else "nodes"
    if method == "nodes":
        if unsupported:
            raise BpxValueError(f"export_onnx(method='nodes') has no ONNX pattern for {', '.join(unsupported)}; "
                                "use method='ndonnx' (traces the layer's own forward code)")
        model = _nodes_model(net, opset, dtype, batch_size)
    else:
        model = _ndonnx_model(net, dtype, batch_size)
    _describe(model, net, method)
    onnx.checker.check_model(model)
    with atomic_write(path, "ONNX model") as f:
        f.write(model.SerializeToString())
    return path


def supported_layers() -> list[str]:
    """The layer types the ``"nodes"`` route exports."""
    return sorted(cls.__name__ for cls in _PATTERNS)


def _describe(model: Any, net: Network, method: str) -> None:
    loss = net.loss.name if net.loss is not None else ""
    props = {"bpx_version": __version__, "bpx_config": json.dumps(net.config()), "bpx_loss": loss,
             "bpx_export_method": method}
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.producer_version = "bpx", __version__
    model.doc_string = ("bpx network in inference mode; output: " +
                        ("logits" if net.loss is not None and net.loss.takes_logits else "the last layer's values"))


# ---------------------------------------------------------------------- route 1: one node pattern per layer
class _Graph:
    """Nodes and initializers being collected, with fresh value names."""

    def __init__(self, helper: Any, numpy_helper: Any, state: dict[str, np.ndarray], dtype: str) -> None:
        self.helper, self.numpy_helper = helper, numpy_helper
        self.state, self.dtype = state, dtype
        self.nodes: list[Any] = []
        self.initializers: dict[str, Any] = {}

    def constant(self, name: str, value: np.ndarray | None = None) -> str:
        """The initializer ``name`` (a state_dict entry unless ``value`` is given)."""
        if name not in self.initializers:
            array = np.asarray(self.state[name] if value is None else value, dtype=self.dtype)
            self.initializers[name] = self.numpy_helper.from_array(array, name)
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        out = f"{name}/{op}"
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


def _nodes_model(net: Network, opset: int, dtype: str, batch_size: int | None) -> Any:
    onnx = _require("onnx")
    from onnx import helper, numpy_helper

    state = net.state_dict()
    graph = _Graph(helper, numpy_helper, state, dtype)
    value = INPUT
    for i, layer in enumerate(net.layers):
        prefix = f"layers.{net.position(layer)}"
        value = _PATTERNS[type(layer)](graph, layer, value, prefix, f"layers.{i}", opset)
    graph.nodes.append(helper.make_node("Identity", [value], [OUTPUT], name="output"))
    elem = onnx.TensorProto.FLOAT if dtype == "float32" else onnx.TensorProto.DOUBLE
    batch: int | str = BATCH if batch_size is None else batch_size
    inputs = [helper.make_tensor_value_info(INPUT, elem, [batch, *net.input_shape])]
    outputs = [helper.make_tensor_value_info(OUTPUT, elem, [batch, *net.output_shape])]
    g = helper.make_graph(graph.nodes, "bpx", inputs, outputs, list(graph.initializers.values()))
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(g, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


Pattern = Callable[[_Graph, Any, str, str, str, int], str]


def _dense(g: _Graph, layer: Dense, x: str, prefix: str, name: str, opset: int) -> str:
    inputs = [x, g.constant(f"{prefix}.weight")]
    if layer.bias is not None:
        inputs.append(g.constant(f"{prefix}.bias"))
    return g.node("Gemm", inputs, name)


def _unary(op: str) -> Pattern:
    def pattern(g: _Graph, layer: Any, x: str, prefix: str, name: str, opset: int) -> str:
        return g.node(op, [x], name)

    return pattern


def _leaky(g: _Graph, layer: LeakyReLU, x: str, prefix: str, name: str, opset: int) -> str:
    return g.node("LeakyRelu", [x], name, alpha=float(layer.negative_slope))


def _softmax(g: _Graph, layer: Softmax, x: str, prefix: str, name: str, opset: int) -> str:
    return g.node("Softmax", [x], name, axis=-1)


def _conv(g: _Graph, layer: Conv2D, x: str, prefix: str, name: str, opset: int) -> str:
    inputs = [x, g.constant(f"{prefix}.weight")]
    if layer.bias is not None:
        inputs.append(g.constant(f"{prefix}.bias"))
    (ph, pw) = layer.padding
    return g.node("Conv", inputs, name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=[ph, pw, ph, pw])


def _pool(op: str) -> Pattern:
    def pattern(g: _Graph, layer: Any, x: str, prefix: str, name: str, opset: int) -> str:
        return g.node(op, [x], name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride))

    return pattern


def _global_avg(g: _Graph, layer: GlobalAvgPool2D, x: str, prefix: str, name: str, opset: int) -> str:
    return g.node("Flatten", [g.node("GlobalAveragePool", [x], name)], name, axis=1)


def _flatten(g: _Graph, layer: Flatten, x: str, prefix: str, name: str, opset: int) -> str:
    return g.node("Flatten", [x], name, axis=1)


def _batch_norm(g: _Graph, layer: BatchNorm, x: str, prefix: str, name: str, opset: int) -> str:
    inputs = [x] + [g.constant(f"{prefix}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
    return g.node("BatchNormalization", inputs, name, epsilon=float(layer.eps))


def _layer_norm(g: _Graph, layer: LayerNorm, x: str, prefix: str, name: str, opset: int) -> str:
    if opset < 17:
        raise BpxValueError(f"{name} LayerNorm needs opset >= 17 (ONNX LayerNormalization), got opset={opset}")
    return g.node("LayerNormalization", [x, g.constant(f"{prefix}.weight"), g.constant(f"{prefix}.bias")], name,
                  axis=-1, epsilon=float(layer.eps))


_PATTERNS: dict[type[Layer], Pattern] = {
    Dense: _dense, ReLU: _unary("Relu"), Sigmoid: _unary("Sigmoid"), Tanh: _unary("Tanh"),
    Identity: _unary("Identity"), Dropout: _unary("Identity"), LeakyReLU: _leaky, Softmax: _softmax,
    Conv2D: _conv, MaxPool2D: _pool("MaxPool"), AvgPool2D: _pool("AveragePool"), GlobalAvgPool2D: _global_avg,
    Flatten: _flatten, BatchNorm: _batch_norm, BatchNorm2D: _batch_norm, LayerNorm: _layer_norm,
}


# ---------------------------------------------------------------------- route 2: bpx's own code on ndonnx
def ndonnx_backend(dtype: str = "float32") -> Backend:
    """A :class:`Backend` whose ``xp`` is ndonnx: bpx's layers run on it record an ONNX graph.

    Built directly (``get_backend`` does not know ndonnx): ``mutable=True`` because ndonnx arrays
    accept the in-place operators and slice assignment the layers use."""
    ndx = _require("ndonnx")
    device = ndx.__array_namespace_info__().default_device()
    return Backend("ndonnx", ndx, device, getattr(ndx, dtype), dtype, ndx.int64, mutable=True, matmul_out=False)


def _ndonnx_model(net: Network, dtype: str, batch_size: int | None) -> Any:
    ndx = _require("ndonnx")
    backend = ndonnx_backend(dtype)
    state = net.state_dict()
    clones: dict[Layer, Layer] = {}
    layers = [clones.setdefault(layer, layer.clone()) for layer in net.layers]
    host: dict[Any, np.ndarray] = {}
    names: dict[Any, str] = {}
    for original, twin in clones.items():
        position = net.position(original)
        for p, q in zip(original.parameters(), twin.parameters(), strict=True):
            names[q] = f"layers.{position}.{p.name}"
            host[q] = state[names[q]].astype(np.float64)
    ParameterStore(backend, list(host), host, names)  # binds the clones' parameters to ndonnx constants
    for original, twin in clones.items():
        position = net.position(original)
        twin.build(net.shapes[position], backend)
        for b in twin.buffers():
            b.value = ndx.asarray(state[f"layers.{position}.{b.name}"].astype(dtype))
    x = ndx.argument(shape=(BATCH if batch_size is None else batch_size, *net.input_shape), dtype=backend.dtype)
    ctx = Context(backend, False, net.seed, net.step_count, None)
    y = x
    try:
        for i, layer in enumerate(layers):
            ctx.position = i
            y, _ = layer.forward(y, ctx)
    except (TypeError, ValueError, AttributeError, NotImplementedError, IndexError) as err:
        hint = (" (it reads the batch size: pass batch_size=N for a fixed batch)"
                if batch_size is None and layers[i].__class__ in (Conv2D, Flatten, MaxPool2D, AvgPool2D) else "")
        raise BpxValueError(f"export_onnx(method='ndonnx'): layers[{i}] {type(layers[i]).__name__} cannot be traced "
                            f"with ndonnx{hint}: {type(err).__name__}: {err}") from None
    return ndx.build({INPUT: x}, {OUTPUT: y})


# ---------------------------------------------------------------------- command line
def add_cli_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``export`` to the subparsers ``sub`` of a ``bpx`` parser; returns its parser."""
    p = sub.add_parser("export", help="write a checkpoint as an ONNX model",
                       description="Export a checkpoint (from bpx train --save or net.save()) to ONNX, in inference "
                                   f"mode. Needs the onnx extra: {INSTALL}.")
    p.add_argument("model", metavar="CHECKPOINT", help="a .npz or .safetensors checkpoint")
    p.add_argument("output", metavar="MODEL.onnx", help="the ONNX file to write")
    p.add_argument("--method", choices=METHODS, default="auto", help="how the graph is built (see bpx.export.onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset of the 'nodes' method")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="the model's float type")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="a fixed batch size (default: any)")
    p.add_argument("--check", action="store_true",
                   help="run the model with onnxruntime on random inputs and compare with bpx")
    return p


def run_cli(args: argparse.Namespace, given: set[str] | None = None) -> int:
    """``bpx export``: load the checkpoint, export it, optionally check it; returns the exit status."""
    from ..sequential import load

    net = load(args.model, "numpy", dtype=args.dtype)
    path = export_onnx(net, args.output, method=args.method, opset=args.opset, dtype=args.dtype,
                       batch_size=args.batch_size)
    print(f"wrote {path} ({path.stat().st_size:,} bytes): input {INPUT} (batch, "
          f"{', '.join(map(str, net.input_shape))}) -> output {OUTPUT} (batch, "
          f"{', '.join(map(str, net.output_shape))})")
    if args.check:
        worst = check_with_onnxruntime(net, path, batch_size=args.batch_size or 8)
        print(f"onnxruntime agrees with bpx: largest difference {worst:.3g}")
    return 0


def check_with_onnxruntime(net: Network, path: str | os.PathLike[str], batch_size: int = 8, seed: int = 0) -> float:
    """Run the model at ``path`` with onnxruntime on random inputs; return the largest absolute
    difference from ``net.forward`` (inference mode). Raises :class:`bpx.BpxValueError` beyond float32 tolerance."""
    ort = _require("onnxruntime")
    from ..host.arrays import to_host

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    elem = session.get_inputs()[0].type
    x = np.random.default_rng(seed).normal(size=(batch_size, *net.input_shape))
    x = x.astype(np.float64 if "double" in elem else np.float32)
    got = session.run([OUTPUT], {INPUT: x})[0]
    want = to_host(net.forward(x))
    worst = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    if not worst <= 1e-4 * scale:
        raise BpxValueError(f"{path}: onnxruntime's outputs differ from bpx's by up to {worst:.3g}")
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    """``bpx export`` as a program of its own (``python -m bpx.export.onnx MODEL model.onnx``)."""
    parser = argparse.ArgumentParser(prog="bpx export")
    sub = parser.add_subparsers(dest="command", required=True)
    add_cli_parser(sub)
    args = parser.parse_args(["export", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run_cli(args)
    except (BpxError, OSError) as err:
        print(f"bpx export: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
