"""k-point convergence of the labels' total energies per frame category (issue 12).

    OMP_NUM_THREADS=1 python benchmarks/dft_kpoint_convergence.py [--configfile config/network.yaml]

Labels one frame of each category of a network training set (the cubic 5-atom cell, the first untwisted
bilayer and the first ``twisted_path`` Σ5 frame of ``results/network/STO/dft/test.extxyz``) with the
config's ``dft`` block at several ``kpt_density`` values (GPAW, through ``make_calculator``), and writes
energy per atom and its difference to the densest grid to ``benchmarks/results/dft_kpoint_convergence.csv``.
A local potential cannot fit errors that differ between cells, so the labels of one training set need a
density at which every category has converged to the accuracy asked of the potential.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import yaml
from ase.io import read

from twistox.core.config import validate_config
from twistox.dft.calculators import kpoints, make_calculator
from twistox.dft.stage import label_settings
from twistox.relax.lattice_constant import cubic_cell

RESULTS = Path(__file__).resolve().parent / "results"


def frames(test_file: Path) -> dict:
    test = read(test_file, ":")
    pick = {c: next(a for a in test if a.info.get("config_type") == c) for c in ("bilayer", "twisted_path")}
    return {"bulk": cubic_cell("Sr", "Ti", "O", 3.905), **pick}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default="config/network.yaml")
    p.add_argument("--frames", default="results/network/STO/dft/test.extxyz")
    p.add_argument("--densities", default="bulk:1.0,2.4,3.6;bilayer:1.0,2.4,3.6;twisted_path:1.0,2.4")
    p.add_argument("--out", default=str(RESULTS / "dft_kpoint_convergence.csv"))
    a = p.parse_args()
    cfg = label_settings(validate_config(yaml.safe_load(open(a.configfile))))  # the dft_label rule's settings
    todo = {c: [float(x) for x in d.split(",")] for c, d in (t.split(":") for t in a.densities.split(";"))}
    rows = []
    for cat, at in frames(Path(a.frames)).items():
        for d in todo.get(cat, []):
            atoms = at.copy()
            atoms.calc = make_calculator("gpaw", dict(cfg, kpt_density=d), atoms)
            t = time.time()
            e = atoms.get_potential_energy() / len(atoms)
            rows.append({"category": cat, "atoms": len(atoms), "kpt_density": d, "kpts": "x".join(map(str, kpoints(atoms, d))),
                         "energy_eV_per_atom": e, "wall_s": round(time.time() - t, 1)})
            print(rows[-1], flush=True)
    ref = {r["category"]: r["energy_eV_per_atom"] for r in sorted(rows, key=lambda r: r["kpt_density"])}
    for r in rows:
        r["minus_densest_meV_per_atom"] = round(1000 * (r["energy_eV_per_atom"] - ref[r["category"]]), 2)
    with open(a.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
