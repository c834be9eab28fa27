"""Strain stage cost vs supercell size: deformation gradient, cages, gridding of every plane, Fourier fits.

    python benchmarks/bench_strain.py                    # Sigma61 and Sigma149 (1 + 1 cells), < 1 min on 1 core
    python benchmarks/bench_strain.py --angles 4.98 --cells 4   # the paper's Sigma265 with 4 + 4 cells (~10^4 atoms)

Each stack is the rigid bilayer with the moiré twist relaxation of tests/strain_models.py (psi = A sum cos G.r),
so the network periods come out = lambda; the schema's default settings (grid 0.25 Å, N = 6 moiré harmonics).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from strain_models import bilayer, network, relaxed_dataset  # noqa: E402

from twistox.strain.stage import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--angles", type=float, nargs="+", default=[10.39, 20.02])
    ap.add_argument("--cells", type=int, default=1, help="unit cells per layer")
    ap.add_argument("--max-sigma", type=int, default=300)
    a = ap.parse_args()
    print(f"{'theta':>7} {'Sigma':>6} {'atoms':>7} {'planes':>6} {'grid':>5} {'N_sc':>5} {'time_s':>7} "
          f"{'period_eps/λ':>12} {'period_twist/λ':>14}")
    for th in a.angles:
        rigid = bilayer(th, a.max_sigma, bottom_cells=a.cells, top_cells=a.cells)
        rel = relaxed_dataset(network(rigid, -0.3), rigid)
        t = time.perf_counter()
        ds = run(rel, {}, species={"B": "Ti", "X": "O"})
        dt = time.perf_counter() - t
        lam = ds.attrs["moire_period"]
        print(f"{ds.attrs['theta_deg']:7.2f} {ds.attrs['sigma']:6d} {ds.sizes['atom']:7d} {ds.sizes['plane']:6d} "
              f"{ds.sizes['x']:5d} {ds.attrs['fourier_order_supercell']:5d} {dt:7.2f} "
              f"{ds.attrs['network_period_eps_xy'] / lam:12.4f} {ds.attrs['network_period_twist'] / lam:14.4f}")


if __name__ == "__main__":
    main()
