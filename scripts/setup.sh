#!/usr/bin/env bash
# Create the virtual environment .venv (or $SNNAV_VENV) with snnav and its whole stack, from scratch.
#
# The order matters (see docs/install.md and the README):
#   1. torch==2.13.0 first: on these machines pip resolves that exact pin to a CPU wheel on disk, while any
#      unpinned torch (or a package that drags one in) pulls a multi-GB CUDA build.
#   2. the locked, normally-resolving packages (requirements/lock.txt);
#   3. norse, lava-nc and lava-dl with --no-deps: their declared pins (torchvision, torch<2.4, Python<3.11) would
#      replace that torch or refuse this Python. lava's Python-3.11 fix lives in hardware_sims/lava/compat.py;
#   4. snnav itself, editable.
# Re-running is cheap: a stamp of the inputs skips work that is already done. SNNAV_FORCE_SETUP=1 rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SNNAV_VENV:-.venv}
if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)'; then
  echo "snnav setup: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); snnav supports 3.10-3.12 (tested on 3.11). Set PYTHON=/path/to/python3.11 and re-run." >&2
  exit 2
fi

stamp_of_inputs() {
  { cat requirements/lock.txt pyproject.toml scripts/setup.sh; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}
want=$(stamp_of_inputs)
if [ -z "${SNNAV_FORCE_SETUP:-}" ] && [ -f "$venv/.snnav-setup-stamp" ] && [ "$(cat "$venv/.snnav-setup-stamp")" = "$want" ]; then
  echo "snnav setup: $venv is up to date"
  exit 0
fi

echo "snnav setup: creating $venv with $PYTHON"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
q=(-q)
"${pip[@]}" install "${q[@]}" torch==2.13.0
"${pip[@]}" install "${q[@]}" -r requirements/lock.txt
"${pip[@]}" install "${q[@]}" --no-deps norse==1.1.0
"${pip[@]}" install "${q[@]}" --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
"${pip[@]}" install "${q[@]}" --no-deps -e .

# Everything the user asked for must import, lava included (through snnav's compatibility fix).
"$venv/bin/python" - <<'PY'
import importlib
import hardware_sims  # noqa: F401  (installs the lava fixes first)
for name in ["torch", "snntorch", "nir", "nirtorch", "norse", "numpy", "h5py", "pytest", "lava.proc.lif.process",
             "lava.lib.dl.slayer", "lava.lib.dl.netx", "snnav", "export"]:
    importlib.import_module(name)
import torch
if torch.__version__.split("+")[0] != "2.13.0":
    raise SystemExit(f"snnav setup: expected torch 2.13.0, found {torch.__version__}")
print("snnav setup: all packages import; torch", torch.__version__)
PY
echo "$want" > "$venv/.snnav-setup-stamp"
echo "snnav setup: done ($venv)"
