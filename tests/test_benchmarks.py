"""The benchmark harness runs end to end (``--quick``) and writes well-formed reports.

Nothing here times anything or asserts on speed: the quick configuration only proves that
every case, implementation and report path works. The reference implementations are also
checked against bpx (they must compute the same training step, or the ratios mean nothing).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `benchmarks` is a folder of the checkout, not an installed package

from benchmarks import registry  # noqa: E402
from benchmarks.bpx_runners import BpxFit, BpxLoop  # noqa: E402
from benchmarks.peers import NumpyHand  # noqa: E402
from benchmarks.report import table  # noqa: E402
from benchmarks.runner import Setup  # noqa: E402
from benchmarks.timing import Stats, round_robin  # noqa: E402
from benchmarks.workload import (  # noqa: E402
    Dataset,
    Workload,
    epoch_flops,
    epoch_plan,
    initial_weights,
    step_gemms,
)


def run_harness(tmp_path: Path, *args: str, module: str = "benchmarks.mlp") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", module, "--quick", "--quiet", "--out", str(tmp_path), *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_outputs(tmp_path: Path, name: str) -> tuple[str, dict]:
    md, js = tmp_path / f"{name}.md", tmp_path / f"{name}.json"
    assert md.is_file() and js.is_file(), sorted(p.name for p in tmp_path.iterdir())
    return md.read_text(), json.loads(js.read_text())


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header_start}"))
    assert set(lines[start + 1]) <= set("|:- ")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_mlp_quick_writes_markdown_and_json(tmp_path):
    proc = run_harness(tmp_path, "--threads", "1")
    markdown, payload = read_outputs(tmp_path, "mlp")
    assert markdown in proc.stdout
    assert payload["case"] == "mlp" and payload["config"]["quick"]
    machine = payload["machine"]
    assert machine["cpu_count"] >= 1 and machine["versions"]["numpy"]
    assert machine["env"]["OMP_NUM_THREADS"] == "1"
    if hasattr(os, "sched_setaffinity"):
        assert machine["allowed_cpus"] == 1  # pinned
    assert "OPENBLAS_CORETYPE" in machine["env"]
    [block] = payload["batches"]
    assert block["batch_size"] == 64 and block["steps"] == 2
    assert block["floor"]["floor_seconds"] > 0 and block["floor"]["best_gflops"] > 0
    results = block["results"]
    assert registry.BASELINE in results and "bpx-numpy" in results and "bpx-numpy-fit" in results
    for label, r in results.items():
        assert r["seconds"]["median"] > 0, label
        assert r["vs_floor"] > 0 and r["samples_per_s"] > 0
        assert np.isfinite(r["losses"][-1])
    # every implementation trained the same network on the same batches
    base = results[registry.BASELINE]["losses"][-1]
    for label, r in results.items():
        assert r["losses"][-1] == pytest.approx(base, rel=1e-4), label
    rows = table_rows(markdown, "implementation")
    assert [r[0] for r in rows] == list(results)
    assert rows[0][5] == "1.00×"


def test_small_quick(tmp_path):
    run_harness(tmp_path, module="benchmarks.small")
    markdown, payload = read_outputs(tmp_path, "small")
    results = payload["results"]
    assert "numpy-hand step" in results and "bpx-numpy train_step (device arrays)" in results
    for name, r in results.items():
        assert r["us_per_step"]["median"] > 0
        assert r["first_loss"] == pytest.approx(0.298371109, abs=1e-9), name
    assert len(table_rows(markdown, "implementation")) == len(results)


def test_memory_quick(tmp_path):
    run_harness(tmp_path, "--case", "memory", "--backend", "numpy")
    markdown, payload = read_outputs(tmp_path, "memory")
    results = payload["results"]
    assert set(results) == {"numpy-hand", "bpx-numpy"}, payload["notes"]
    for r in results.values():
        assert r["ru_maxrss_bytes"] > r["dataset_bytes"] > 0
        assert r["tracemalloc_peak_bytes"] > 0
    assert len(table_rows(markdown, "implementation")) == 2


def test_cnn_quick(tmp_path):
    run_harness(tmp_path, module="benchmarks.cnn")
    markdown, payload = read_outputs(tmp_path, "cnn")
    results = payload["results"]
    assert set(results) == {"torch-autograd", "bpx-numpy", "bpx-torch"}, payload["notes"]
    finals = [r["losses"][-1] for r in results.values()]
    assert max(finals) - min(finals) < 1e-4, finals  # same weights, batches and SGD steps
    rows = table_rows(markdown, "implementation")
    assert [r[0] for r in rows] == list(results) and rows[0][5] == "1.00×"
    memory = payload["memory"]
    assert len(memory) == 2 and all(m["step"] >= m["im2col"] > 0 for m in memory.values())


def test_profile_quick(tmp_path):
    run_harness(tmp_path, "--case", "profile")
    markdown, payload = read_outputs(tmp_path, "profile")
    assert {"numpy-hand", "bpx-numpy", "bpx-numpy-fit"} <= set(payload["profiles"])
    assert "tottime" in markdown


# ---------------------------------------------------------------------- pieces, no subprocess
def tiny_setup(batch: int = 8, n: int = 16) -> Setup:
    rng = np.random.default_rng(1)
    data = Dataset(rng.random((n, 12), dtype=np.float32), rng.integers(0, 4, n), "test")
    sizes = (12, 6, 5, 4)
    return Setup(data, initial_weights(sizes, 0), Workload(sizes, batch, lr=0.1))


def test_reference_loop_matches_bpx():
    setup = tiny_setup()
    hand, loop, fit = NumpyHand(setup), BpxLoop(setup, "numpy"), BpxFit(setup, "numpy")
    for i in range(2):
        plan = epoch_plan(0, i, setup.data.n)
        losses = [r.epoch(plan) for r in (hand, loop, fit)]
        assert losses == pytest.approx([losses[0]] * 3, rel=1e-5)
    for (w, b), (pw, pb) in zip(hand.params, zip(*[iter(loop.net.parameters())] * 2, strict=True), strict=True):
        np.testing.assert_allclose(pw.value, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pb.value, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["torch-autograd", "jax-jit", "bpx-torch", "bpx-jax", "bpx-jax-jit", "bpx-jax-jit-fit",
                                  "bpx-torch-fit"])
def test_framework_implementations_match_the_reference(name):
    spec = registry.IMPLEMENTATIONS[name]
    pytest.importorskip(spec.library)
    setup = tiny_setup()
    hand, other = NumpyHand(setup), spec.make(setup)
    for i in range(2):
        plan = epoch_plan(0, i, setup.data.n)
        assert other.epoch(plan) == pytest.approx(hand.epoch(plan), rel=1e-4)


def test_epoch_order_is_fits_order():
    plan = epoch_plan(3, 2, 50)
    assert np.array_equal(plan.order, np.random.default_rng(plan.seed).permutation(50))


def test_gemm_accounting():
    sizes = (784, 256, 256, 10)
    assert epoch_flops(sizes, 60000) == 6 * 60000 * (784 * 256 + 256 * 256 + 256 * 10) - 2 * 60000 * 784 * 256
    gemms = step_gemms(sizes, 128)
    assert len(gemms) == 3 * 3 - 1  # no grad_x for the input layer
    assert sum(g.flops for g in gemms) * 60000 // 128 == epoch_flops(sizes, 60000)


def test_registry_selection():
    chosen, _ = registry.select("cpu", None)
    names = [c.spec.name for c in chosen]
    assert names[0] == registry.BASELINE
    assert "bpx-numpy" in names and "bpx-cupy" not in names
    chosen, _ = registry.select("cupy", "1", ["numpy-hand", "torch-autograd", "bpx-cupy"])
    devices = {c.spec.name: c.device for c in chosen}
    assert devices.get("numpy-hand") is None
    if "torch-autograd" in devices:
        assert devices["torch-autograd"] == "cuda:1"
    with pytest.raises(ValueError, match="unknown implementation"):
        registry.select("cpu", None, ["nope"])
    with pytest.raises(ValueError, match="--device"):
        registry.select("cpu", "cuda:0")


def test_round_robin_and_stats():
    calls = []
    samples = round_robin({"a": calls.append, "b": calls.append}, rounds=2, warmup=1)
    assert calls == [0, 0, 1, 1, 2, 2]
    assert len(samples["a"]) == 2 and len(samples["a (warm-up)"]) == 1
    stats = Stats([3.0, 1.0, 2.0])
    assert (stats.median, stats.min, stats.max) == (2.0, 1.0, 3.0)


def test_markdown_table():
    text = table(["name", "value"], [["a", "1.0"], ["bb", "22.5"]])
    lines = text.splitlines()
    assert lines[0] == "| name | value |" and lines[1] == "|:-----|------:|"
    assert lines[3] == "| bb   |  22.5 |"


def test_fit_step_dispatches_at_most_36_operations_and_the_update_does_not_grow_with_depth():
    """Issue 13's budget (at most 40), held at today's 35, counted with PyTorch's dispatch mode (the
    count does not depend on the layer widths, so a narrow 784-…-10 stand-in keeps this fast):
    SGD momentum's fit step of the 3-layer ReLU MLP and its update, for 2 to 9 Dense layers."""
    pytest.importorskip("torch")
    from benchmarks.cases import opcount

    sgd = opcount._optimizers()["SGD momentum 0.9"]
    fit = opcount.count_fit([784, 16, 16, 10], 32, sgd, 32)
    assert fit["total"] <= 36, fit["by_op"]
    assert fit["by_op"]["mm"] == 8  # 3 forward, 3 for the [W; b] gradients, 2 for the layers' inputs
    assert fit["by_op"]["threshold_backward"] == 2  # each ReLU's backward in one fused operation
    updates = {opcount.count_update(h, sgd, 8)["total"] for h in (1, 2, 4, 8)}
    assert updates == {4}
