"""Synthetic 'relaxed' twisted bilayers with known strain for the strain-stage tests (and figure checks).

- ``relaxed_dataset(atoms, rigid)``: relaxed.zarr-like Dataset (``positions`` and ``positions_rigid``).
- ``deformed``: a homogeneous in-plane deformation of positions and cell.
- ``network``: each layer displaced by u = +-curl(psi z) with psi = A sum_i cos(G_i . r) over the two
  moiré reciprocal basis vectors: a divergence-free, moiré-periodic twist relaxation whose local
  rotation is omega = -lap(psi)/2 = (|G|^2 / 2) psi in the top layer and -omega in the bottom one,
  so the interlayer twist is theta + |G|^2 psi (A < 0: untwisting at the coincidence (AA) site at the origin).
"""

from __future__ import annotations

import numpy as np

from twistox.core.io import structure_dataset
from twistox.strain.fourier import moire_harmonics
from twistox.supercell.builder import BilayerSpec, build_bilayer
from twistox.supercell.lattice import nearest_csl

A = 3.905


def bilayer(theta_deg: float, max_sigma: int = 200, **spec):
    return build_bilayer(nearest_csl(theta_deg, max_sigma), BilayerSpec(**{"bottom_cells": 1, "top_cells": 1, **spec}))


def relaxed_dataset(atoms, rigid=None):
    """relaxed.zarr-like Dataset: positions of ``atoms``, positions_rigid of ``rigid`` (default: the same)."""
    ds = structure_dataset(atoms)
    ds["positions_rigid"] = (("atom", "xyz"), (rigid if rigid is not None else atoms).positions, {"units": "Å"})
    return ds


def deformed(atoms, F2):
    """Homogeneous in-plane deformation (2x2) of positions and cell; info kept."""
    b = atoms.copy()
    F = np.eye(3)
    F[:2, :2] = F2
    b.set_cell(np.asarray(atoms.cell) @ F.T, scale_atoms=True)
    b.info.update(atoms.info)
    return b


def network(atoms, amplitude: float):
    """Copy of ``atoms`` with the moiré-periodic twist relaxation of the module docstring (amplitude A, Å^2)."""
    info = atoms.info
    L = float(info["supercell_length"])
    G = 2 * np.pi / L * moire_harmonics(info["layer_angles_deg"], float(info["a"]), L)
    b = atoms.copy()
    r = b.positions[:, :2]
    s = np.where(b.arrays["layer"] == 1, 1.0, -1.0)
    u = np.zeros_like(r)
    for g in G:
        sn = np.sin(r @ g)
        u[:, 0] += -amplitude * sn * g[1]  # u = (d psi / dy, -d psi / dx)
        u[:, 1] += amplitude * sn * g[0]
    b.positions[:, :2] += s[:, None] * u
    return b
