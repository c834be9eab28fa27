#!/usr/bin/env bash
# Prepared GPU check (issue 17): one table of MACE relax/MD, phase field and abTEM/CuPy on one CUDA GPU.
#   bash benchmarks/gpu_check.sh            # paper sizes on the first GPU, <= 8 min; table also in benchmarks/results/gpu_check.md
#   bash benchmarks/gpu_check.sh --cpu      # tiny sizes on the CPU (what tests/test_gpu_check.py runs)
# Needs the twistox environment (torch with CUDA, mace-torch, abtem, cupy-cuda12x for the STEM rows).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $* " != *" --cpu "* ]]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
mkdir -p benchmarks/results
JSON=$([[ " $* " == *" --cpu "* ]] && echo /dev/null || echo benchmarks/results/gpu_check.json)
timeout 480 "$PY" benchmarks/gpu_check.py --json "$JSON" "$@" | tee benchmarks/results/gpu_check$([[ " $* " == *" --cpu "* ]] && echo _cpu).md
