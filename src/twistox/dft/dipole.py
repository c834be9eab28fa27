"""Dipole correction for slab-like DFT cells whose two faces differ (``dft.gpaw.dipole_correction``).

A bilayer with an SrO face on one side and a TiO2 face on the other carries a net dipole along z;
with periodic images along z (plane waves) an artificial field crosses the vacuum and biases the
forces. GPAW's dipole layer (``poissonsolver={'dipolelayer': 'xy'}``) cancels it. It needs a cell
that is not periodic along z (``pbc[2]`` False), as every slab/bilayer frame of twistox is.
"""

from __future__ import annotations

from collections import Counter

from ase import Atoms

from twistox.core.config import ConfigError

MODES = ("auto", "always", "never")


def face_composition(atoms: Atoms, top: bool, tol: float = 0.6) -> Counter:
    """Species of the outermost atomic plane (atoms within ``tol`` [Å] of the lowest/highest z)."""
    z = atoms.positions[:, 2]
    edge = z.max() if top else z.min()
    sel = abs(z - edge) < tol
    return Counter(s for s, k in zip(atoms.get_chemical_symbols(), sel) if k)


def faces_differ(atoms: Atoms, tol: float = 0.6) -> bool:
    """True when the bottom and top planes have different species or proportions (e.g. SrO vs TiO2)."""
    b, t = face_composition(atoms, False, tol), face_composition(atoms, True, tol)
    if set(b) != set(t):
        return True
    e0 = sorted(b)[0]
    return any(b[e] * t[e0] != t[e] * b[e0] for e in b)


def use_dipole_correction(atoms: Atoms | None, mode: str) -> bool:
    """Whether a frame gets the dipole layer: ``always`` (non-periodic z only), ``never``, or ``auto``
    (non-periodic z and faces that differ)."""
    if mode not in MODES:
        raise ConfigError(f"dft.gpaw.dipole_correction: {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if atoms is None or mode == "never" or bool(atoms.pbc[2]):
        return False
    return mode == "always" or faces_differ(atoms)


def gpaw_dipole_kwargs(atoms: Atoms | None, mode: str) -> dict:
    """GPAW keyword arguments of the dipole correction along z ({} when not used)."""
    return {"poissonsolver": {"dipolelayer": "xy"}} if use_dipole_correction(atoms, mode) else {}
