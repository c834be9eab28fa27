"""Contact guard: stop a relaxation or MD whose atoms come unphysically close (``relax.contact_guard``).

A potential driven where it has no training data can pull atoms together and lower the energy without
bound (the first Σ145 network potential put Sr pairs at 1.74 Å, 3.9 Å in the crystal, and gained
0.45 eV/atom in 150 FIRE steps). Every ``every`` steps the guard compares each pair distance with
``fraction`` × the pair's shortest distance in the cubic perovskite at the structure's lattice constant
``a`` (Å): A–A and B–B a, A–B a√3/2, A–X and X–X a/√2, B–X a/2. A pair below its limit stops the run with
:class:`StructureCollapse` (the checkpoint is kept), instead of hours of MD on a broken structure.
Default fraction 0.5: a rigid twisted interface (planes 1.95 Å apart at a = 3.905 Å: Sr–Ti 1.95 Å,
limit 1.69 Å) passes, thermal motion at 300 K is ~0.1 Å; the Sr pairs above (limit 1.95 Å) do not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from twistox.relax.lattice_constant import perovskite_species


class StructureCollapse(RuntimeError):
    """Atoms closer than the contact guard allows: the potential is outside its training data."""


def perovskite_contacts(A: str, B: str, X: str, a: float) -> dict[frozenset, float]:
    """Shortest distance (Å) of each species pair in the cubic ABX3 perovskite of lattice constant ``a``."""
    r2 = np.sqrt(2.0)
    return {frozenset((A,)): a, frozenset((B,)): a, frozenset((A, B)): a * np.sqrt(3.0) / 2,
            frozenset((A, X)): a / r2, frozenset((X,)): a / r2, frozenset((B, X)): a / 2}


@dataclass
class ContactGuard:
    """Pair-distance check of one structure's positions; call it as a FIRE/MD step callback."""

    template: Atoms            # species, cell, pbc (positions are replaced on every check)
    limits: dict[frozenset, float]
    fraction: float
    every: int = 10
    where: str = "relax"

    @classmethod
    def from_atoms(cls, atoms: Atoms, fraction: float = 0.5, every: int = 10) -> "ContactGuard":
        """Limits from the perovskite at ``atoms.info['a']`` (the lattice constant the structure was built or
        rescaled to); species from :func:`perovskite_species`."""
        if not 0 < fraction < 1 or every < 1:
            raise ValueError(f"relax.contact_guard: fraction {fraction!r} (allowed: 0 < f < 1), every {every!r} "
                             "(allowed: >= 1)")
        A, B, X = perovskite_species(atoms)
        contacts = perovskite_contacts(A, B, X, float(atoms.info["a"]))
        t = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        return cls(t, {k: fraction * v for k, v in contacts.items()}, fraction, every)

    def phase(self, where: str) -> "ContactGuard":
        """The same guard, naming ``where`` (scan, refine, md) in its error."""
        return replace(self, where=where)

    def violations(self, positions: np.ndarray) -> list[tuple[int, int, float, float]]:
        """(i, j, distance, limit) of every pair below its limit, closest first (Å)."""
        t = self.template  # its own Atoms (from_atoms): only the positions change between checks
        t.positions = np.asarray(positions, float)
        i, j, d = neighbor_list("ijd", t, max(self.limits.values()))
        keep = i < j
        i, j, d = i[keep], j[keep], d[keep]
        sym = np.array(t.get_chemical_symbols())
        lim = np.array([self.limits.get(frozenset((a, b)), 0.0) for a, b in zip(sym[i], sym[j])])
        bad = np.flatnonzero(d < lim)
        return sorted(((int(i[k]), int(j[k]), float(d[k]), float(lim[k])) for k in bad), key=lambda v: v[2])

    def check(self, positions: np.ndarray, step: int) -> None:
        """Raise :class:`StructureCollapse` when a pair of one structure ((N, 3) or (B, N, 3)) is too close."""
        x = np.asarray(positions, float)
        for b, xb in enumerate(x.reshape(-1, *x.shape[-2:])):
            bad = self.violations(xb)
            if bad:
                i, j, d, lim = bad[0]
                s = self.template.get_chemical_symbols()
                raise StructureCollapse(
                    f"{self.where} step {step}{f' (structure {b})' if x.ndim == 3 and len(x) > 1 else ''}: "
                    f"{len(bad)} atom pair(s) closer than relax.contact_guard.fraction = {self.fraction} x their "
                    f"perovskite distance; closest {s[i]}{i}-{s[j]}{j} at {d:.2f} Å (limit {lim:.2f} Å). The potential "
                    "has driven the structure where it has no training data (see the committee force std): add "
                    "labels there (mlip.active_learning, carve) or set relax.contact_guard.enabled: false")

    def __call__(self, step: int, positions: np.ndarray) -> None:
        if step % self.every == 0:
            self.check(positions, step)
