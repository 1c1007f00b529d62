#!/usr/bin/env bash
# Create .venv and install the project with its test tools. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Pin torch first: the CPU build; an unpinned torch would pull GBs of CUDA wheels.
# On a CUDA machine, install the CUDA torch of your choice before running this script.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
# setuptools prints a boxed notice about flat-layout editable installs on every install: not for newcomers.
PYTHONWARNINGS="ignore::UserWarning" .venv/bin/python -m pip install -q -e ".[test]"
