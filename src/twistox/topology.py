"""Alias of :mod:`twistox.analysis.topology` and :mod:`twistox.analysis.defects` (public API name kept for
notebooks and outside tools)."""

from twistox.analysis.defects import *  # noqa: F401,F403
from twistox.analysis.defects import Defect, find_defects, ring_helicity  # noqa: F401
from twistox.analysis.topology import *  # noqa: F401,F403
from twistox.analysis.topology import skyrmion_number, winding_map  # noqa: F401
