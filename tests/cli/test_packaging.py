"""What a new user installs and reads: the distribution name (``bpx`` on PyPI is another project),
install hints, the licence, the README's own-data example, and the test-suite switches."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bpx.version import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]
TEXT_FILES = ["README.md", "pyproject.toml", *map(str, (ROOT / "docs").glob("*.md")), "ci", "bpx", "tests",
              "benchmarks", "examples"]
SUFFIXES = (".py", ".md", ".toml", ".sh", ".txt", ".json")


def text_files():
    for entry in TEXT_FILES:
        path = ROOT / entry
        paths = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for p in paths:
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts:
                yield p


def test_distribution_name_license_and_dependencies():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "bpx-backprop"
    assert any(d.startswith("threadpoolctl") for d in project["dependencies"])
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Copyright (c) 2026 The bpx developers" in licence


def test_every_install_command_names_this_project():
    """``pip install bpx`` or ``"bpx[torch]"`` would install Battery Parameter eXchange."""
    wrong = re.compile(r"""pip install (-U )?["']?bpx(\[|["'\s]|$)|["']bpx\[""")
    offenders = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in text_files() if p.name != "test_packaging.py"
                 for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if wrong.search(line)]
    assert not offenders, "\n".join(offenders)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "Battery Parameter eXchange" in readme and "The package is called `bpx-backprop`" in readme


def test_readme_own_data_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- own-data example -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    for line in re.findall(r"#> (.*)", block):  # the README shows what each print gives
        assert line.strip() in result.stdout, result.stdout


def test_a_typo_in_bpx_test_backends_fails_the_run():
    """It used to skip almost every test silently."""
    env = {**os.environ, "BPX_TEST_BACKENDS": "nmupy"}
    one_test = f"{Path(__file__).relative_to(ROOT)}::test_distribution_name_license_and_dependencies"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", one_test],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode != 0
    assert "BPX_TEST_BACKENDS='nmupy' names unknown backends ['nmupy']" in result.stdout + result.stderr


def test_the_tour_is_reproducible_without_a_seed_in_fit():
    """The README tour passes no seed to fit: its batch order comes from the network's seed."""
    import bpx
    from bpx.datasets import mnist_mini

    (x, y), (x_test, y_test) = mnist_mini()
    results = []
    for _ in range(2):
        net = bpx.Sequential(bpx.Dense(784, 32, init="he_uniform"), bpx.ReLU(), bpx.Dense(32, 10), seed=0)
        net.fit(x[:1000], y[:1000], loss="softmax_cross_entropy", optimizer=bpx.SGD(lr=0.05, momentum=0.9),
                epochs=2, batch_size=128, verbose=0)
        results.append(net.evaluate(x_test, y_test))
    assert results[0] == results[1]
    assert "total: 25,450 parameters" in str(net.summary())
