"""Benchmark MACE force calls as used by the relaxation/MD stages and by active learning.

Baseline: one float64 model, glibc default allocator. Compared in the same run:
float32, committee mean (K models), and the allocator settings of ENVIRONMENT.md
(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11 MALLOC_TOP_PAD_=2 GiB, read by glibc at
process start, so each variant runs in its own process).

    python benchmarks/bench_mlip.py                 # Sigma13 (130 atoms), tiny model, < 2 min
    python benchmarks/bench_mlip.py --theta 10.39 --cells 4 --channels 64 --calls 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", "MALLOC_TOP_PAD_": "2147483648"}


def _train(tmp: Path, channels: int, k: int) -> list[str]:
    import numpy as np
    from ase.calculators.lj import LennardJones
    from ase.io import write

    from twistox.mlip.training import TrainSettings, train_committee
    from twistox.supercell.builder import Perovskite
    from twistox.dft.trainset import bulk_cell, rattle

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(12):
        at = rattle(bulk_cell(Perovskite(), (2, 1, 1)), rng, 0.05)
        at.calc = LennardJones(sigma=2.0, epsilon=0.05, rc=5.0, smooth=True)
        at.info["REF_energy"] = at.get_potential_energy()
        at.arrays["REF_forces"] = at.get_forces()
        at.calc = None
        frames.append(at)
    write(tmp / "t.extxyz", frames, format="extxyz")
    s = TrainSettings(committee_size=k, num_channels=channels, max_epochs=2, ema_decay=0.0)
    return [str(p) for p in train_committee(tmp / "t.extxyz", tmp / "c", s, seed=0, workers=k)]


def _child(args) -> None:
    """Time force calls in this process; print JSON."""
    from twistox.supercell.lattice import nearest_csl
    from twistox.mlip.calculator import load_calculator
    from twistox.core.runtime import set_threads
    from twistox.supercell.builder import BilayerSpec, build_bilayer

    set_threads(args.threads)
    at = build_bilayer(nearest_csl(args.theta, 400), BilayerSpec(bottom_cells=args.cells, top_cells=args.cells))
    calc = load_calculator(args.models.split(","), mode=args.mode, device="cpu", default_dtype=args.dtype)
    at.calc = calc
    t0 = time.time()
    at.get_forces()
    first = time.time() - t0
    ts = []
    for i in range(args.calls):
        at.positions[0, 0] += 1e-3 * (i + 1)
        t0 = time.time()
        at.get_forces()
        ts.append(time.time() - t0)
    print(json.dumps({"atoms": len(at), "first_s": first, "call_s": sorted(ts)[len(ts) // 2]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--theta", type=float, default=22.62, help="twist angle (deg) -> nearest CSL")
    ap.add_argument("--cells", type=int, default=1, help="unit cells per layer")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--committee", type=int, default=3)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--models", default="", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="first", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory() as tmp:
        models = _train(Path(tmp), args.channels, args.committee)
        variants = [("baseline: 1 model, float64", "first", "float64", {}),
                    ("1 model, float32", "first", "float32", {}),
                    ("1 model, float64, malloc env", "first", "float64", MALLOC),
                    (f"committee mean (K={args.committee}), float64", "mean", "float64", {})]
        base = None
        for name, mode, dtype, env in variants:
            cmd = [sys.executable, __file__, "--child", "--models", ",".join(models), "--mode", mode, "--dtype", dtype,
                   "--theta", str(args.theta), "--cells", str(args.cells), "--calls", str(args.calls),
                   "--threads", str(args.threads)]
            e = {k: v for k, v in os.environ.items() if k not in MALLOC}
            out = subprocess.run(cmd, env={**e, **env, "OMP_NUM_THREADS": str(args.threads)}, capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            base = base or r["call_s"]
            print(f"{name:45s} {r['atoms']:6d} atoms  force call {r['call_s'] * 1e3:8.1f} ms  "
                  f"(first {r['first_s']:.2f} s)  ratio to baseline {base / r['call_s']:.2f}x")


if __name__ == "__main__":
    main()
