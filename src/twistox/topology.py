"""Alias of :mod:`twistox.analysis.topology` (public API name kept for notebooks and outside tools)."""

from twistox.analysis.topology import *  # noqa: F401,F403
from twistox.analysis.topology import skyrmion_number, winding_map  # noqa: F401
