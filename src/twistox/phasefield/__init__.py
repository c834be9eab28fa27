"""3D phase-field polarisation of the twisted bilayer with flexoelectric coupling (torch, CPU/GPU)."""

from .energy import TERMS, SlabEnergy
from .materials import Material, alpha1_pertsev, landau_minimum_inplane, material_from_config
from .solver import PhaseFieldSolver, RelaxResult, RelaxSettings
from .spectral import Grid, fft_size

__all__ = ["TERMS", "SlabEnergy", "Material", "alpha1_pertsev", "landau_minimum_inplane", "material_from_config",
           "PhaseFieldSolver", "RelaxResult", "RelaxSettings", "Grid", "fft_size"]
