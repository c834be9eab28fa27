"""3D phase-field polarisation of the twisted bilayer with flexoelectric coupling (torch, CPU/GPU)."""

from .energy import TERMS, SlabEnergy
from .materials import FLEXO_PRESETS, Material, alpha1_pertsev, landau_minimum_inplane, material_from_config
from .network import network_coefficients, network_nodes
from .solver import PhaseFieldSolver, RelaxResult, RelaxSettings
from .spectral import Grid, fft_size

__all__ = ["TERMS", "SlabEnergy", "FLEXO_PRESETS", "Material", "alpha1_pertsev", "landau_minimum_inplane",
           "material_from_config", "network_coefficients", "network_nodes", "PhaseFieldSolver", "RelaxResult",
           "RelaxSettings", "Grid", "fft_size"]
