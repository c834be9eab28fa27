"""B-site (Ti) cages: off-centring against the rigid lattice's four equatorial X (O), changed cages,
coordination numbers and the polarisation of the off-centring.

The cage of a B site is fixed by the RIGID structure: its four same-plane X neighbours (at a/2 along
the layer's cube axes). The off-centring delta = r_B - centroid(those four X) (Å, in-plane, global
frame, minimum image) uses the same four atoms in the relaxed structure, so a broken or an extra B-X
bond at a dislocation core cannot drag the centroid by ~a/6 (P ~ 1 C/m^2). A cage that changed is
flagged (bitmask, ``CAGE_*``) and left out of the polarisation:

- ``CAGE_BROKEN``: a cage X is no longer within ``cutoff`` of the B site;
- ``CAGE_EXTRA``: an X that is not in the cage is within ``cutoff`` and equatorial (|dz| < a/4);
- ``CAGE_MOVED``: a cage X moved more than a/4 from its rigid position relative to the B site.

Apical X are left out of the centroid (their number differs at the interface, CN 5 vs 6); the
coordination number counts every X within ``cutoff`` (both layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list

E_CHARGE = 1.602176634e-19  # C (CODATA 2018, exact)
ANGSTROM = 1e-10  # m

CAGE_BROKEN, CAGE_EXTRA, CAGE_MOVED = 1, 2, 4
EQUATORIAL_DZ = 0.25  # |dz| < 0.25 a: equatorial (the apical X sit at a/2)


@dataclass
class Cages:
    """Rigid-lattice cages: B atom indices (nB,), their four equatorial X (nB, 4), rigid B->X vectors (nB, 4, 3)."""

    b_index: np.ndarray
    x_index: np.ndarray
    d_rigid: np.ndarray


@dataclass
class OffcentringResult:
    """Per-atom B-site results (rows of non-B atoms: NaN / -1)."""

    delta: np.ndarray  # (N, 2) Å, r_B - centroid of the rigid cage's four X (global frame)
    n_equatorial: np.ndarray  # (N,) equatorial X within the cutoff in the relaxed structure
    coordination: np.ndarray  # (N,) X within the cutoff in any plane
    cage_flags: np.ndarray  # (N,) bitmask CAGE_*; 0 intact

    @property
    def cage_changed(self) -> np.ndarray:
        """(N,) int8: 1 changed cage, 0 intact, -1 not a B site."""
        return np.where(self.cage_flags < 0, -1, (self.cage_flags > 0).astype(int)).astype(np.int8)


def _bx_pairs(atoms: Atoms, b_number: int, x_number: int, cutoff: float):
    i, j, D = neighbor_list("ijD", atoms, cutoff)
    keep = (atoms.numbers[i] == b_number) & (atoms.numbers[j] == x_number)
    return i[keep], j[keep], D[keep]


def rigid_cages(rigid: Atoms, b_number: int, x_number: int, cutoff: float, a: float) -> Cages:
    """The four equatorial X of every B site in the rigid structure; ValueError if any B has another number."""
    i, j, D = _bx_pairs(rigid, b_number, x_number, cutoff)
    eq = np.abs(D[:, 2]) < EQUATORIAL_DZ * a
    i, j, D = i[eq], j[eq], D[eq]
    b = np.flatnonzero(rigid.numbers == b_number)
    cnt = np.bincount(i, minlength=len(rigid))[b]
    if (cnt != 4).any():
        k = int(b[np.flatnonzero(cnt != 4)[0]])
        raise ValueError(f"strain.bo_cutoff: {cutoff} Å gives {int(cnt[cnt != 4][0])} equatorial X around B atom {k} of "
                         f"the rigid lattice (expected 4); allowed: {a / 2:.3f} < bo_cutoff < {a * np.sqrt(5) / 2:.3f} Å")
    order = np.argsort(i, kind="stable")
    return Cages(b_index=b, x_index=j[order].reshape(-1, 4), d_rigid=D[order].reshape(-1, 4, 3))


def cage_vectors(positions: np.ndarray, cell, pbc, cages: Cages) -> np.ndarray:
    """(nB, 4, 3) minimum-image vectors r_X - r_B from each B site to its four cage X (Å)."""
    D = positions[cages.x_index] - positions[cages.b_index][:, None, :]
    return find_mic(D.reshape(-1, 3), cell, pbc)[0].reshape(D.shape)


def cage_offcentring(positions: np.ndarray, cell, pbc, cages: Cages) -> np.ndarray:
    """(N, 2) in-plane r_B - centroid of its rigid cage (Å); NaN rows for non-B atoms."""
    delta = np.full((len(positions), 2), np.nan)
    delta[cages.b_index] = -cage_vectors(positions, cell, pbc, cages)[..., :2].mean(axis=1)
    return delta


def b_site_offcentring(atoms: Atoms, cages: Cages, x_number: int, cutoff: float, a: float) -> OffcentringResult:
    """Off-centring of every B site against its rigid cage, cage flags and coordination (see module doc)."""
    n = len(atoms)
    b = cages.b_index
    D = cage_vectors(atoms.positions, atoms.cell, atoms.pbc, cages)
    delta = np.full((n, 2), np.nan)
    delta[b] = -D[..., :2].mean(axis=1)  # r_B - centroid = -mean(r_X - r_B)

    b_number = int(atoms.numbers[b[0]]) if len(b) else -1
    i, j, Dn = _bx_pairs(atoms, b_number, x_number, cutoff)
    cn = np.full(n, -1)
    cn[b] = np.bincount(i, minlength=n)[b]
    eq = np.abs(Dn[:, 2]) < EQUATORIAL_DZ * a
    neq = np.full(n, -1)
    neq[b] = np.bincount(i[eq], minlength=n)[b]
    # which (B, X) pairs now bonded are cage pairs: compare atom-index sets
    row = np.full(n, -1)
    row[b] = np.arange(len(b))
    in_cage = (cages.x_index[row[i[eq]]] == j[eq][:, None]).any(axis=1)
    extra = np.zeros(n, bool)
    extra[i[eq][~in_cage]] = True
    bonded = np.zeros_like(cages.x_index, bool)
    r_eq, x_eq = row[i[eq]][in_cage], j[eq][in_cage]
    bonded[r_eq, np.argmax(cages.x_index[r_eq] == x_eq[:, None], axis=1)] = True
    moved = (np.linalg.norm(D - cages.d_rigid, axis=-1) > 0.25 * a).any(axis=1)
    flags = np.full(n, -1)
    flags[b] = (CAGE_BROKEN * (~bonded).any(axis=1) + CAGE_EXTRA * extra[b] + CAGE_MOVED * moved).astype(int)
    return OffcentringResult(delta=delta, n_equatorial=neq, coordination=cn, cage_flags=flags)


def polarization_from_offcentring(delta: np.ndarray, born_charge: float, a: float) -> np.ndarray:
    """P = Z* e delta / a^3 in C/m^2 (delta and a in Å)."""
    return born_charge * E_CHARGE * np.asarray(delta) * ANGSTROM / (a * ANGSTROM) ** 3


def coordination_counts(coordination: np.ndarray, plane: np.ndarray, planes: np.ndarray, max_cn: int = 8) -> np.ndarray:
    """Counts of B sites per (plane, CN = 0..max_cn); atoms with CN -1 (not B) are skipped."""
    out = np.zeros((len(planes), max_cn + 1), dtype=np.int64)
    for k, p in enumerate(planes):
        c = coordination[(plane == p) & (coordination >= 0)]
        out[k] = np.bincount(np.minimum(c, max_cn), minlength=max_cn + 1)
    return out


def count_per_plane(mask: np.ndarray, plane: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Number of atoms with ``mask`` in each of ``planes``."""
    return np.array([int(np.count_nonzero(mask & (plane == p))) for p in planes], dtype=np.int64)
