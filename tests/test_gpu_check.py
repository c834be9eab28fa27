"""benchmarks/gpu_check.py --cpu: the prepared GPU check runs end to end on tiny CPU sizes, so it
cannot rot while no GPU is at hand. Marked slow: ~15 s of CPU, but > 60 s wall on a loaded 2-core machine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = ["MACE force call", "FIRE, 1 structure", "FIRE, batched scan of 2", "MD (Langevin BAOAB, 2 fs)",
        "phase field to convergence", "abTEM plan-view tile (flexible ADF)", "4D-STEM COM tile (pixelated + COM)"]


def test_gpu_check_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], check=True)


@pytest.mark.slow
def test_gpu_check_cpu_table_complete_and_finite(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--json",
                          str(tmp_path / "ref.json")], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = [line for line in out.stdout.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    names = [c.split("|")[1].strip() for c in table]
    for r in ROWS:
        assert r in names, (r, names)
    assert names.count("MACE force call") == 2  # float32 and float64
    for line in table:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        value, baseline, speedup, peak = (float(cells[i]) for i in (2, 4, 5, 6))
        assert all(math.isfinite(v) and v > 0 for v in (value, baseline, speedup, peak)), line
    ref = json.loads((tmp_path / "ref.json").read_text())
    assert {"relax", "phasefield"} <= set(ref)
