"""Translation scan: rigid in-plane offsets of the top layer, in its own lattice units."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from twistox.supercell.lattice import rotation2

def translation_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of the top layer along its own [100] and [010] (unit-cell fractions): n x n in [0, 1)."""
    if int(n) != n or n < 1:
        raise ValueError(f"translation_grid: {n!r} is not allowed; allowed: integer >= 1")
    t = np.arange(int(n)) / int(n)
    return t, t.copy()


def translate_top_layer(atoms: Atoms, offset_frac: Sequence[float]) -> np.ndarray:
    """Positions with the top layer shifted by ``offset_frac`` of its unit cell, wrapped in x, y (Å)."""
    info = atoms.info
    shift2 = rotation2(info["layer_angles_deg"][1]) @ (np.asarray(offset_frac, float) * float(info["a"]))
    pos = atoms.get_positions().copy()
    top = atoms.arrays["layer"] == 1
    pos[top, :2] += shift2
    L = np.diag(atoms.cell)[:2]
    pos[:, :2] = np.mod(pos[:, :2], L)
    pos[:, :2][np.isclose(pos[:, :2], L, atol=1e-10)] = 0.0
    return pos



def minimum_image_displacement(a: np.ndarray, b: np.ndarray, cell: np.ndarray, pbc: Sequence[bool]) -> np.ndarray:
    """b - a under the minimum-image convention of an orthorhombic cell (Å)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    Ld = np.diag(np.asarray(cell, float))
    for k in range(3):
        if pbc[k]:
            d[:, k] -= Ld[k] * np.round(d[:, k] / Ld[k])
    return d

