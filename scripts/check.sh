#!/usr/bin/env bash
# The README's test command: lint (ruff), the layer contracts (import-linter), then the tests that are not slow.
# Run from anywhere after scripts/setup.sh; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SNNAV_VENV:-.venv}
"$venv/bin/ruff" check .
"$venv/bin/lint-imports"
"$venv/bin/python" -m pytest -m "not slow" "$@"
