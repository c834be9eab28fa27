"""Time and memory of the electronic stage's LCAO +U on the test systems, against the estimate.

Usage: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_electronic.py [--threads 2]
Prints one line per system: atoms, orbitals, k-points, SCF iterations, wall (s), max RSS (MB), estimate.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from ase import Atoms

from twistox.electronic import calculation, stage
from twistox.electronic import regions as R
from twistox.electronic.estimate import describe

A = 3.905


def _sto() -> Atoms:
    return Atoms("SrTiO3", scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[A] * 3, pbc=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cases = {"bulk 5 atoms, 2x2x2 k": (_sto(), {"kpt_density": 1.2, "h": 0.25, "ldos_z_halfwidth": None}),
             "2x2x1 supercell, 20 atoms, Gamma": (_sto().repeat((2, 2, 1)),
                                                   {"kpt_density": 0.0, "h": 0.25, "ldos_z_halfwidth": None})}
    for name, (atoms, cfg) in cases.items():
        s = stage.check_settings(cfg)
        est = stage.check_resources(atoms, s, args.threads)
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            r = calculation.run_lcao(atoms, s, np.full(len(atoms), 4, np.int8), len(R.GROUPS), None,
                                     checkpoint_dir=tmp)
        print(f"{name}: {r.scf_iterations} iterations, {time.time() - t0:.1f} s, max RSS {r.max_rss_mb:.0f} MB; "
              f"gap {r.cbm - r.vbm:.3f} eV; estimate {describe(est)}", flush=True)


if __name__ == "__main__":
    main()
