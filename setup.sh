#!/usr/bin/env bash
# Install twistox and its stack into a virtual environment (default .venv).
# torch is installed first and pinned to a CPU-satisfiable version, so that
# mace-torch does not pull a multi-GB CUDA build on CPU machines; a GPU machine
# with its own torch keeps it (set TWISTOX_KEEP_TORCH=1 or have torch installed).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install -q "torch==2.13.0"
fi
$PIP install -q -e ".[test,slurm]"
bash envs/install_gpaw.sh "$VENV"
echo "twistox installed in $VENV"
