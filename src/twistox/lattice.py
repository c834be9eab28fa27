"""Alias of :mod:`twistox.supercell.lattice` (public API name kept for notebooks and outside tools)."""

from twistox.supercell.lattice import *  # noqa: F401,F403
from twistox.supercell.lattice import CSL, nearest_csl, rotation2, shortest_basis, sigma_of, theta_of  # noqa: F401
