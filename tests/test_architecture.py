"""The architecture, enforced: import-linter's contracts (pyproject.toml), no import cycle anywhere
in bpx (type-checking and function-level imports included), no NumPy in the core folders, no
module reaching into another module's private names, and a training step that never
synchronises with the host (PyTorch's 'meta' device, where any read-back raises)."""

import ast
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import bpx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(bpx.__file__).parent
CORE = ["backend", "nn", "optim", "random.py"]
#: Private names of the standard library that bpx may use.
ALLOWED_PRIVATE = {"_exit"}


def modules(folder: Path):
    yield from sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_no_import_cycle_anywhere():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("bpx", include_external_packages=False)
    names = sorted(graph.modules)
    index = {m: i for i, m in enumerate(names)}
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if d in index} for m in names}
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    counter, stack, on_stack, low, order, cycles = [0], [], set(), {}, {}, []

    def visit(v):
        order[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in names:
        if v not in order:
            visit(v)
    # the root package imports its submodules (the public API); submodules never import the root
    cycles = [c for c in cycles if c != ["bpx"]]
    assert not cycles, f"import cycles: {cycles}"
    importers_of_root = graph.find_modules_that_directly_import("bpx")
    assert importers_of_root <= {"bpx.__main__"}, f"submodules importing the root package: {importers_of_root}"


def test_core_folders_never_import_numpy():
    checked = 0
    for entry in CORE:
        target = PACKAGE / entry
        for path in ([target] if target.suffix == ".py" else modules(target)):
            checked += 1
            bad = [m for m in imported_modules(path) if m == "numpy" or m.startswith("numpy.")]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}: core code uses the Array API namespace"
    assert checked >= 10


def test_no_module_reaches_into_another_modules_private_names():
    """``obj._name`` is allowed on ``self``/``cls`` and for names the same module defines."""
    offenders = []
    for folder in (PACKAGE, ROOT / "benchmarks"):
        for path in modules(folder):
            tree = ast.parse(path.read_text())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            defined |= {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign | ast.AugAssign)
                        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                        if isinstance(t, ast.Attribute)}
            defined |= {e.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name) and t.id == "__slots__"
                        for e in ast.walk(n.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                        and not node.attr.startswith("__")):
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if node.attr in defined or node.attr in ALLOWED_PRIVATE:
                    continue
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("loss, targets", [
    ("softmax_cross_entropy", "labels"), ("softmax_cross_entropy", "onehot"), ("half_squared_error", "onehot"),
    ("mean_squared_error", "onehot"), ("binary_cross_entropy", "onehot"),
])
@pytest.mark.parametrize("make_optimizer", [lambda: bpx.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
                                            lambda: bpx.Adam(weight_decay=1e-4), bpx.AdamW],
                         ids=["sgd", "adam", "adamw"])
def test_train_step_has_no_host_sync(loss, targets, make_optimizer):
    torch = pytest.importorskip("torch")
    backend = bpx.get_backend("torch", "meta", "float32")
    rng = np.random.default_rng(0)
    net = bpx.Sequential(bpx.Dense(6, 8), bpx.ReLU(), bpx.Dense(8, 8), bpx.Sigmoid(), bpx.Dense(8, 8),
                         bpx.Tanh(), bpx.Dense(8, 8), bpx.LeakyReLU(), bpx.Dense(8, 4), backend=backend, seed=0)
    x = torch.asarray(rng.normal(size=(16, 6)).astype(np.float32), device="meta")
    labels = rng.integers(0, 4, size=16)
    t = torch.asarray(labels if targets == "labels" else np.eye(4, dtype=np.float32)[labels], device="meta")
    optimizer = make_optimizer()
    for _ in range(3):
        value = net.train_step(x, t, loss, optimizer)
    assert value.device.type == "meta" and value.shape == ()
    assert all(p.value.device.type == "meta" for p in net.parameters())
    assert optimizer.iterations == 3 and net.step_count == 3


def test_every_deliberate_error_is_a_bpx_error():
    """bpx raises built-in exceptions only where Python's protocols require them: NotImplementedError
    in abstract methods, AttributeError from a module ``__getattr__``, KeyboardInterrupt on Ctrl-C."""
    import builtins

    allowed = {"NotImplementedError", "KeyboardInterrupt"}
    builtin = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
               and issubclass(getattr(builtins, n), BaseException)}
    offenders = []
    for path in modules(PACKAGE):
        tree = ast.parse(path.read_text())
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for node in ast.walk(function):
                if not (isinstance(node, ast.Raise) and node.exc is not None):
                    continue
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else getattr(exc, "attr", None)
                if name in builtin and name not in allowed and not (
                        name == "AttributeError" and function.name == "__getattr__"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: raise {name} in {function.name}")
    assert not offenders, "\n".join(sorted(set(offenders)))
