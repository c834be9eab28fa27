"""Supercell build time (Sigma265, 4 + 4 cells, ~10^4 atoms) against a cut-from-a-rotated-crystal baseline,
and the dry-run time of a 20-angle sweep of config/paper.yaml.

    python benchmarks/bench_supercell.py [--theta 5] [--cells 4] [--repeat 5]
"""

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from ase.build import surface

from twistox.supercell.lattice import nearest_csl
from twistox.supercell.builder import BilayerSpec, build_bilayer

ROOT = Path(__file__).resolve().parents[1]


def baseline(csl, cells: int, a: float = 3.905):
    """The obvious way: a large rotated SrTiO3 slab per layer with ASE, atoms inside the cell kept."""
    L = csl.supercell_length(a)
    out = []
    for k in (0, 1):
        slab = surface(_sto(a), (0, 0, 1), cells, vacuum=None)
        r = int(math.ceil(L * math.sqrt(2) / a)) + 2
        big = slab.repeat((2 * r, 2 * r, 1))
        big.translate([-r * a, -r * a, 0])
        big.rotate(csl.layer_angles_deg[k], "z", center=(0, 0, 0))
        p = big.positions
        keep = (p[:, 0] >= -1e-8) & (p[:, 0] < L - 1e-8) & (p[:, 1] >= -1e-8) & (p[:, 1] < L - 1e-8)
        out.append(p[keep])
    return np.concatenate(out)


def _sto(a):
    from ase import Atoms

    return Atoms("SrTiO3", scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[a, a, a], pbc=True)


def best(f, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = f()
        ts.append(time.perf_counter() - t0)
    return min(ts), r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--theta", type=float, default=5.0)
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    csl = nearest_csl(args.theta)
    spec = BilayerSpec(bottom_cells=args.cells, top_cells=args.cells)
    t_ours, atoms = best(lambda: build_bilayer(csl, spec), args.repeat)
    t_base, pos = best(lambda: baseline(csl, args.cells), args.repeat)
    print(f"Sigma{csl.sigma} ({csl.theta_deg:.2f} deg), {args.cells}+{args.cells} cells: {len(atoms)} atoms "
          f"(baseline {len(pos)} atoms)")
    print(f"twistox build_bilayer: {t_ours * 1e3:8.1f} ms   (target < 2000 ms)")
    print(f"ASE rotate-and-cut    : {t_base * 1e3:8.1f} ms")
    print(f"speed-up              : {t_base / t_ours:8.1f}x")

    cfg = yaml.safe_load(open(ROOT / "config" / "paper.yaml"))
    cfg["twist"]["angles_deg"] = [float(x) for x in np.linspace(5.0, 40.0, 20)]
    cfg["twist"]["max_error_deg"] = 2.0  # a dense sweep: accept the nearest CSL with Sigma <= 300
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "sweep.yaml"
        f.write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q", "--configfile", str(f), "--directory", d,
                        "-s", str(ROOT / "Snakefile")], check=True, capture_output=True)
        print(f"snakemake -n, 20-angle paper sweep: {time.perf_counter() - t0:.2f} s   (target < 10 s)")


if __name__ == "__main__":
    main()
