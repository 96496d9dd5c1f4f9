#!/usr/bin/env bash
# Checks that every optional extra resolves from the package index without installing anything
# (pip install --dry-run). Needs network access to PyPI; not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
for extra in cuda12 cuda13 torch jax plot test; do
    report=$(mktemp)
    python -m pip install --quiet --dry-run --ignore-installed --report "$report" ".[$extra]" >/dev/null
    python - "$extra" "$report" <<'PY'
import json, sys
extra, path = sys.argv[1], sys.argv[2]
names = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in json.load(open(path))["install"])
print(f"[{extra}] resolves: {' '.join(names)}")
PY
    rm -f "$report"
done
