"""Cost estimate of a GPAW LCAO calculation, made before any SCF starts (issue 18 item 4).

Memory [GB] = base + dense LCAO matrices + real-space grids:
- matrices: ``N_MATRICES`` (S, T, H, C, eigensolver work ~ 7) × nao² × itemsize (8 real at Γ only,
  16 complex) × irreducible k-points (GPAW keeps S, T, C per k);
- grids: coarse n_c = Π ceil(L_i / h) points and the 2× finer density grid (8 n_c), ~12 fine + 10 coarse
  float64 arrays (density, potentials, Poisson work, mixer history);
- base: Python + GPAW + setups, measured 0.35 GB for the 5-atom cell.
Time per SCF iteration [s] = C_BF · Σ_orbitals min(sphere points, n_c) · n_k (basis functions on the grid:
potential matrix and density, the dominant term, cf. shared/ENVIRONMENT.md: 50-atom twisted cell, Γ, h 0.25 Å,
~13 s per iteration on 2 cores) + C_DIAG · n_k · nao³ / threads (dense generalized eigenproblem, threaded BLAS).
Order-of-magnitude calibration: measured on 2 threads (benchmarks/bench_electronic.py) 9.7 s/iteration for the
5-atom cell with 8 k-points (estimate 1.6: per-k overheads of a tiny cell), 7.7 s for 20 atoms at Γ (estimate
3.2), the 50-atom cell 13 s (estimate 25): a factor ~2-6 either way. Memory errs high (measured max RSS 0.30-0.32 GB, estimate 0.36-0.37).
"""

from __future__ import annotations

import math

import numpy as np

BOHR = 0.52917721  # Å
N_MATRICES = 7
BASE_GB = 0.35
C_BF = 5.0e-7     # s per (orbital × grid point × k) per iteration, 1 core (50-atom cell: 13 s/it on 2 cores)
C_DIAG = 2.0e-10  # s per nao³ per k per iteration, 1 core (~10/3 n³ flops at ~17 GFLOP/s)
SCF_ITERATIONS = 25

# dzp orbital counts and largest cutoff radii (Å) of gpaw-data's dzp basis sets (read with
# gpaw.basis_data.Basis.find when GPAW is there; this table is the fallback for the estimate only)
_DZP = {"Sr": (29, 7.85), "Ti": (29, 6.94), "O": (13, 2.85), "Ba": (29, 8.0), "Ca": (29, 7.5),
        "La": (29, 8.0), "Pb": (29, 7.5), "Zr": (29, 7.3), "Nb": (29, 7.3)}


def basis_size(symbol: str, basis: str) -> tuple[int, float]:
    """(orbitals, largest cutoff radius [Å]) of one atom's LCAO basis."""
    try:
        from gpaw.basis_data import Basis

        b = Basis.find(symbol, basis)
        return int(b.nao), float(max(bf.rc for bf in b.bf_j)) * BOHR
    except Exception:  # noqa: BLE001 - GPAW absent or no such file: use the table
        if basis == "dzp" and symbol in _DZP:
            return _DZP[symbol]
        raise ValueError(f"no LCAO basis '{basis}' for {symbol} (GPAW's gpaw-data not found?)") from None


def estimate(symbols: list[str], cell: np.ndarray, kpts: tuple[int, int, int], h: float, basis: str,
             gamma_only: bool, threads: int = 1) -> dict:
    """Memory [GB] and wall time [s] of the LCAO SCF for the atoms (``symbols``) in ``cell`` (3×3, Å)."""
    lengths = np.linalg.norm(np.asarray(cell, float), axis=1)
    n_c = int(np.prod([math.ceil(L / h / 4) * 4 for L in lengths]))   # GPAW rounds to multiples of 4
    nao, work = 0, 0.0
    cache: dict[str, tuple[int, float]] = {}
    for s in symbols:
        if s not in cache:
            cache[s] = basis_size(s, basis)
        n, rc = cache[s]
        nao += n
        work += n * min(4.0 / 3.0 * math.pi * rc**3 / h**3, n_c)
    nk_full = int(np.prod(kpts))
    # Γ-centred grid, time reversal only: k and −k pair up except the self-inverse points (0 and ½ per even axis)
    trim = int(np.prod([2 if n % 2 == 0 else 1 for n in kpts]))
    nk = 1 if gamma_only else (nk_full + trim) // 2
    itemsize = 8 if gamma_only else 16
    mem = BASE_GB + (N_MATRICES * nao**2 * itemsize * nk + (12 * 8 + 10) * n_c * 8) / 1e9
    # grid work is serial in GPAW built without OpenMP (this project's build); only the dense BLAS/LAPACK threads
    t_iter = C_BF * work * nk + C_DIAG * nk * nao**3 / max(threads, 1)
    return {"atoms": len(symbols), "orbitals": nao, "grid_points": n_c, "kpoints_irreducible": nk,
            "memory_gb": float(mem), "time_per_iteration_s": float(t_iter),
            "time_s": float(t_iter * SCF_ITERATIONS), "threads": int(threads)}


def describe(est: dict) -> str:
    return (f"{est['atoms']} atoms, {est['orbitals']} orbitals, {est['grid_points']} grid points, "
            f"{est['kpoints_irreducible']} k-points: ~{est['memory_gb']:.2f} GB, "
            f"~{est['time_s']:.0f} s ({est['time_per_iteration_s']:.1f} s/iteration on {est['threads']} threads)")
