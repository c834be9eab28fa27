"""Supercell stage: configured systems -> BilayerSpec, and the driver ``scripts/supercell.py`` calls."""

from __future__ import annotations

import logging

from ase import Atoms

from twistox.supercell.builder import BilayerSpec, Perovskite, build_bilayer, expected_atom_count
from twistox.supercell.lattice import CSL

log = logging.getLogger("twistox")


def material(config: dict, system: str) -> Perovskite:
    """The ABX3 perovskite of ``config['systems'][system]`` (species A, B, X; lattice constant a [Å])."""
    s = config["systems"][system]
    return Perovskite(A=s["A"], B=s["B"], X=s["X"], a=float(s["a"]))


def bilayer_spec(config: dict, system: str, translation=None) -> BilayerSpec:
    """BilayerSpec of a configured system (translation from the supercell section by default)."""
    s = config["systems"][system]
    t = translation if translation is not None else config.get("supercell", {}).get("translation", [0.0, 0.0])
    return BilayerSpec(
        material=material(config, system), interface=s["interface"],
        bottom_cells=s["bottom_cells"], top_cells=s["top_cells"],
        bottom_outer=s["bottom_outer"], top_outer=s["top_outer"],
        interlayer_spacing=s.get("interlayer_spacing"), translation=tuple(t), vacuum=float(s["vacuum"]),
    )


def run(config: dict, system: str, csl: CSL) -> Atoms:
    """The rigid commensurate twisted bilayer of one sample (``csl`` from ``resolve_samples``)."""
    spec = bilayer_spec(config, system)
    log.info("building %s: m=%d n=%d Sigma=%d theta=%.4f deg (requested %.4f)", system, csl.m, csl.n,
             csl.sigma, csl.theta_deg, csl.theta_requested_deg)
    atoms = build_bilayer(csl, spec)
    if len(atoms) != expected_atom_count(csl, spec):
        raise RuntimeError("atom count does not match planes x Sigma")
    log.info("%d atoms, L = %.3f Å, moire period %.3f Å", len(atoms), atoms.info["supercell_length"],
             atoms.info["moire_period"])
    return atoms
