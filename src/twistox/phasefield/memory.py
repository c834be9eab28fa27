"""Memory of the phase-field solver per grid point, and a check that refuses a grid that cannot fit.

The solver's arrays are all linear in the number of grid points N = n² · nz: P, u, φ, the
eigenstrain (3×3 per cell), their gradients and line-search copies, the rfft buffers, and the
per-wavevector block-tridiagonal factors of the elastic (3×3 blocks) and Poisson problems
(n·(n/2+1)·(nz+1) blocks of complex128). Measured (benchmarks/bench_scaling.py, peak RSS vs N on
CPU, float64, fit over 12²×12 … 40²×32 = 1.7e3 … 5.1e4 points): ``BYTES_PER_POINT`` per grid point on top of
``BASE_MB`` for the Python process (torch, imports). The CUDA allocator holds about the same
tensors (float64 throughout), so the same figure bounds GPU memory.
"""

from __future__ import annotations

from twistox.core.config import ConfigError

__all__ = ["BYTES_PER_POINT", "BASE_MB", "grid_points", "phasefield_memory_mb", "check_phasefield_memory"]

BYTES_PER_POINT = 2.97e3  # [B per grid point]; measured, see module docstring (benchmarks/results/scaling_fits.json)
BASE_MB = 250.0  # [MB] the process before the grid (torch + twistox imports): intercept of the measured fit
SAFETY = 1.25  # allocator fragmentation, autograd temporaries of the energy evaluation


def grid_points(n: int, nz: int) -> int:
    """Grid points N = n² · nz of an n × n × nz slab grid."""
    return int(n) * int(n) * int(nz)


def phasefield_memory_mb(n: int, nz: int, bytes_per_point: float = BYTES_PER_POINT) -> float:
    """Predicted peak memory [MB] of a phase-field run on an n² × nz grid (incl. the safety factor)."""
    return BASE_MB + SAFETY * bytes_per_point * grid_points(n, nz) / 2**20


def check_phasefield_memory(n: int, nz: int, budget_mb: float | None, key: str = "resources.phasefield.mem_mb",
                            bytes_per_point: float = BYTES_PER_POINT) -> float:
    """Raise ConfigError naming ``key`` when an n² × nz grid needs more than ``budget_mb`` [MB];
    return the prediction [MB]. ``budget_mb`` None = no limit. Call before building the model."""
    need = phasefield_memory_mb(n, nz, bytes_per_point)
    if budget_mb is not None and need > float(budget_mb):
        per_mb = (float(budget_mb) - BASE_MB) / (SAFETY * bytes_per_point / 2**20)
        raise ConfigError(
            f"config key '{key}': the phase-field grid {n}²×{nz} = {grid_points(n, nz):,} points needs ~{need:,.0f} MB "
            f"({bytes_per_point / 1e3:.1f} kB per point + {BASE_MB:.0f} MB) but the budget is {float(budget_mb):,.0f} MB; "
            f"allowed: {key} >= {need:,.0f}, or at most ~{max(per_mb, 0):,.0f} grid points "
            f"(coarser phasefield.dxy_A or fewer phasefield.nz)")
    return need
