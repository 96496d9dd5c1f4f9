"""ONNX export: onnxruntime gives bpx's predictions (float32 tolerance) for every layer type, on
both routes (one node pattern per layer; bpx's own forward code traced with ndonnx)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bpx
from bpx.export.onnx import check_with_onnxruntime, export_onnx, main, supported_layers

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'bpx-backprop[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'bpx-backprop[onnx]')")

RNG = np.random.default_rng(0)


def _net(name: str) -> bpx.Sequential:
    """Small trained networks covering every layer type (running statistics moved off their defaults)."""
    nets: dict[str, Any] = {
        "mlp": lambda: bpx.mlp([6, 8, 3], activation="tanh", seed=0),
        "mlp_batchnorm_dropout": lambda: bpx.mlp([6, 8, 3], batch_norm=True, dropout=0.3, input_dropout=0.1, seed=0),
        "activations": lambda: bpx.Sequential(bpx.Dense(6, 5), bpx.LeakyReLU(0.1), bpx.Dense(5, 5), bpx.Sigmoid(),
                                              bpx.Dense(5, 3, use_bias=False), bpx.Identity(), bpx.Softmax(), seed=0),
        "layernorm": lambda: bpx.Sequential(bpx.Dense(6, 5), bpx.LayerNorm(5), bpx.ReLU(), bpx.Dense(5, 3), seed=0),
        "tied": lambda: (lambda d: bpx.Sequential(bpx.Dense(6, 3), d, bpx.Tanh(), d, seed=0))(bpx.Dense(3, 3)),
        "cnn": lambda: bpx.Sequential(
            bpx.Conv2D(1, 4, 3, padding=1), bpx.BatchNorm2D(4), bpx.ReLU(), bpx.MaxPool2D(2),
            bpx.Conv2D(4, 4, (3, 2), stride=(1, 2)), bpx.AvgPool2D(2, stride=1), bpx.Flatten(), bpx.Dense(4, 3),
            input_shape=(1, 8, 8), seed=0),
        "global_pool": lambda: bpx.Sequential(bpx.Conv2D(2, 3, 3), bpx.Tanh(), bpx.GlobalAvgPool2D(), bpx.Dense(3, 3),
                                              input_shape=(2, 6, 6), seed=0),
        "lenet": lambda: bpx.cnn((1, 12, 12), classes=3, channels=(2, 3), kernel_size=3, hidden=5, seed=0),
    }
    net = nets[name]()
    x = RNG.normal(size=(16, *net.input_shape))
    targets = np.eye(3)[np.arange(16) % 3]
    net.fit(x, targets, loss="mse" if name == "activations" else "softmax_cross_entropy",
            optimizer=bpx.Adam(lr=0.01), epochs=2, batch_size=4, verbose=0)
    return net


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("name", ["mlp", "mlp_batchnorm_dropout", "activations", "layernorm", "tied", "cnn",
                                  "global_pool", "lenet"])
def test_nodes_route_matches_bpx(tmp_path: Path, name: str) -> None:
    net = _net(name)
    path = export_onnx(net, tmp_path / "m.onnx", method="nodes")
    for n in (1, 5, 16):  # the batch axis is symbolic
        x = RNG.normal(size=(n, *net.input_shape)).astype(np.float32)
        np.testing.assert_allclose(_run(path, x), bpx.to_host(net.predict(x)), rtol=1e-4, atol=1e-5)
    model = onnx.load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["bpx_export_method"] == "nodes" and meta["bpx_loss"] == net.loss.name
    assert len(model.graph.node) <= 2 * len(net.layers) + 1  # one small pattern per layer


def test_node_patterns_are_standard_operators(tmp_path: Path) -> None:
    model = onnx.load(export_onnx(_net("cnn"), tmp_path / "m.onnx"))
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv", "AveragePool", "Flatten", "Gemm",
                   "Identity"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    assert set(supported_layers()) >= {"Dense", "Conv2D", "BatchNorm", "LayerNorm", "Dropout", "Flatten"}


def test_float64_and_fixed_batch(tmp_path: Path) -> None:
    net = _net("mlp").to(dtype="float64")
    path = export_onnx(net, tmp_path / "m.onnx", dtype="float64", batch_size=4)
    x = RNG.normal(size=(4, 6))
    np.testing.assert_allclose(_run(path, x), bpx.to_host(net.predict(x)), rtol=1e-12, atol=1e-12)
    assert check_with_onnxruntime(net, path, batch_size=4) < 1e-12


class Swish(bpx.Layer):
    """A user's own layer, written against the Array API: only the ndonnx route can export it."""

    def forward(self, x: Any, ctx: bpx.nn.Context) -> tuple[Any, Any]:
        xp = ctx.backend.xp
        return x / (1.0 + xp.exp(-x)), x


def test_ndonnx_route_runs_bpx_forward_code(tmp_path: Path) -> None:
    pytest.importorskip("ndonnx", reason="ndonnx is not installed (pip install 'bpx-backprop[onnx]')")
    net = bpx.Sequential(bpx.Dense(4, 5), Swish(), bpx.BatchNorm(5), bpx.Dense(5, 2), seed=0)
    with pytest.raises(bpx.BpxValueError, match=r"no ONNX pattern for layers\[1\] Swish.*method='ndonnx'"):
        export_onnx(net, tmp_path / "m.onnx", method="nodes")
    path = export_onnx(net, tmp_path / "m.onnx")  # auto: a layer without a pattern → ndonnx
    assert {p.key: p.value for p in onnx.load(path).metadata_props}["bpx_export_method"] == "ndonnx"
    for n in (1, 7):
        x = RNG.normal(size=(n, 4)).astype(np.float32)
        np.testing.assert_allclose(_run(path, x), bpx.to_host(net.predict(x)), rtol=1e-4, atol=1e-5)


def test_ndonnx_route_needs_a_fixed_batch_for_convolutions(tmp_path: Path) -> None:
    pytest.importorskip("ndonnx", reason="ndonnx is not installed (pip install 'bpx-backprop[onnx]')")
    net = bpx.Sequential(bpx.Conv2D(1, 2, 3), bpx.ReLU(), bpx.Flatten(), bpx.Dense(18, 2), input_shape=(1, 5, 5),
                         seed=0)
    with pytest.raises(bpx.BpxValueError, match="batch_size=N"):
        export_onnx(net, tmp_path / "m.onnx", method="ndonnx")
    path = export_onnx(net, tmp_path / "m.onnx", method="ndonnx", batch_size=3)
    assert check_with_onnxruntime(net, path, batch_size=3) < 1e-5


def test_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net("mlp")
    with pytest.raises(bpx.BpxTypeError, match="bpx network"):
        export_onnx("net", tmp_path / "m.onnx")  # type: ignore[arg-type]
    with pytest.raises(bpx.BpxValueError, match="method"):
        export_onnx(net, tmp_path / "m.onnx", method="torch")
    with pytest.raises(bpx.CheckpointWriteError, match="does not exist"):
        export_onnx(net, tmp_path / "missing" / "m.onnx")
    with pytest.raises(bpx.BpxValueError, match="opset >= 17"):
        export_onnx(_net("layernorm"), tmp_path / "m.onnx", opset=16)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(bpx.MissingDependencyError, match=r'pip install "bpx-backprop\[onnx\]"'):
        export_onnx(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = _net("lenet")
    for checkpoint in (net.save(tmp_path / "m.npz"), net.save(tmp_path / "m.safetensors")):
        assert main([str(checkpoint), str(tmp_path / "m.onnx"), "--check"]) == 0
        assert "onnxruntime agrees with bpx" in capsys.readouterr().out
    assert main([str(tmp_path / "absent.npz"), str(tmp_path / "x.onnx")]) == 1
    assert "error" in capsys.readouterr().err


def test_bpx_export_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bpx.cli import main as bpx_main

    checkpoint = _net("mlp").save(tmp_path / "m.safetensors")
    assert bpx_main(["export", str(checkpoint), str(tmp_path / "m.onnx"), "--check"]) == 0
    assert "agrees with bpx" in capsys.readouterr().out and (tmp_path / "m.onnx").is_file()
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert bpx_main(["export", str(checkpoint), str(tmp_path / "n.onnx")]) == 1
    assert 'pip install "bpx-backprop[onnx]"' in capsys.readouterr().err
