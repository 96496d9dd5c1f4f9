#!/usr/bin/env bash
# Checks that bpx-backprop and each of its optional extras resolve from the package index without
# installing anything (pip install --dry-run), and that no resolution pulls in the unrelated PyPI
# project "bpx" (Battery Parameter eXchange). Needs network access to PyPI; not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
for extra in "" plot test torch jax mpi cuda12 cuda13 sklearn onnx safetensors; do
    report=$(mktemp)
    target="."
    [ -n "$extra" ] && target=".[$extra]"
    python -m pip install --quiet --dry-run --ignore-installed --report "$report" "$target" >/dev/null
    python - "${extra:-base}" "$report" <<'PY'
import json, sys
extra, path = sys.argv[1], sys.argv[2]
names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(path))["install"]}
assert "bpx-backprop" in names, f"[{extra}] the project itself is not bpx-backprop: {sorted(names)}"
assert "bpx" not in names, f"[{extra}] resolves the unrelated PyPI project 'bpx'"
print(f"[{extra}] resolves: {' '.join(f'{n}=={v}' for n, v in sorted(names.items()))}")
PY
    rm -f "$report"
done
