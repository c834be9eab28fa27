"""Scan tiles that keep a STEM simulation under a memory budget.

Peak memory of an abTEM scan (CPU or GPU) =
  process base + potential (gx·gy·slices real values, held for the whole scan; with potential
  supersampling s the build of 8 slices at s²·gx·gy adds complex FFT buffers)
  + one probe batch (batch · gx·gy complex waves, ~``WAVE_COPIES`` live copies: wave, its FFT,
  propagator/transmission products)
  + the detector output of one scan tile (tile probes × detector pixels real values, ``OUTPUT_COPIES``
  live copies: abTEM's result and the host/transposed copy).
Calibrated on CPU (benchmarks/bench_stem_memory.py, Σ13 2×2-tiled, 288² grid, 15 slices, pixelated
detector 82,944 px): peak RSS 399 / 525 / 1010 MB for 4² / 16² / 32² probes; this model gives
406 / 558 / 1044 MB (+2 / +6 / +3 %).
Only the last term grows with the tile, so the largest tile that fits is
(SAFETY · budget − fixed terms) / (pixels per probe × bytes × copies). Callers add what else they hold
for the whole scan (``extra_mb``: e.g. the 4D-STEM bright-field crops) and per probe (``copies``: e.g. the
frozen-phonon sum). Scan positions are [y, x] (rows = y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from twistox.core.config import ConfigError

__all__ = ["ScanTiling", "stem_memory_mb", "scan_tiles_for_budget", "iter_tiles", "tile_scan", "potential_shape",
           "BASE_MB", "WAVE_COPIES", "OUTPUT_COPIES", "SAFETY"]

BASE_MB = 370.0  # [MB] Python + abTEM/dask imports (305 MB measured) + scheduler/FFTW plans (measured)
WAVE_COPIES = 4  # live complex wave arrays per probe in a multislice step (abTEM 1.0.11)
OUTPUT_COPIES = 2  # measured slope: 0.63 MB per probe for 0.32 MB of float32 pattern
SAFETY = 0.85  # plan tiles for 85 % of the budget: allocator fragmentation, zarr/xarray buffers, model error (±6 %)
MB = 2**20


@dataclass(frozen=True)
class ScanTiling:
    """Tiles of ``tile`` = (ty, tx) probe positions over a scan of ``scan`` = (ny, nx) positions."""

    scan: tuple[int, int]
    tile: tuple[int, int]
    batch: int
    peak_mb: float  # predicted peak [MB] with this tile
    fixed_mb: float  # [MB] base + potential + probe batch (independent of the tile)
    budget_mb: float | None = None  # [MB] the budget planned for (None = unlimited)
    per_probe_mb: float = 0.0  # [MB] held per probe position of a tile

    @property
    def n_tiles(self) -> int:
        return math.ceil(self.scan[0] / self.tile[0]) * math.ceil(self.scan[1] / self.tile[1])

    def describe(self) -> str:
        """One log line: tile, count, predicted peak vs budget."""
        budget = "unlimited" if self.budget_mb is None else f"{self.budget_mb:,.0f} MB (×{SAFETY} planned)"
        return (f"scan {self.scan[0]}×{self.scan[1]} probes in {self.n_tiles} tile(s) of {self.tile[0]}×{self.tile[1]} "
                f"({self.per_probe_mb * 1024:.1f} kB per probe); predicted peak {self.peak_mb:,.0f} MB, budget {budget}")


def _fixed_mb(grid: tuple[int, int], n_slices: int, batch: int, supersampling: int, real_bytes: int,
              potentials: int = 1) -> float:
    g = grid[0] * grid[1]
    pot = g * n_slices * real_bytes * potentials
    build = 8 * supersampling**2 * g * 2 * real_bytes * 2 if supersampling > 1 else 0  # fine chunk + its FFT
    waves = batch * g * 2 * real_bytes * WAVE_COPIES
    return BASE_MB + (pot + build + waves) / MB


def stem_memory_mb(grid: tuple[int, int], n_slices: int, probes: int, det_pixels: int, batch: int = 1,
                   supersampling: int = 1, real_bytes: int = 4) -> float:
    """Predicted peak memory [MB] of scanning ``probes`` positions whose outputs (``det_pixels`` values
    each) are all held at once."""
    return _fixed_mb(grid, n_slices, batch, supersampling, real_bytes) + probes * det_pixels * real_bytes * OUTPUT_COPIES / MB


def scan_tiles_for_budget(scan: tuple[int, int], grid: tuple[int, int], n_slices: int, det_pixels: int,
                          budget_mb: float | None, batch: int = 1, supersampling: int = 1, real_bytes: int = 4,
                          key: str = "resources.stem_4d.mem_mb", copies: float = OUTPUT_COPIES, extra_mb: float = 0.0,
                          potentials: int = 1) -> ScanTiling:
    """Largest scan tile (ty, tx) whose peak memory stays under ``SAFETY`` × ``budget_mb`` [MB].

    ``scan`` (ny, nx) probe positions, ``grid`` (gx, gy) potential/wave grid points, ``det_pixels``
    values per probe position (pixelated: ky·kx; flexible annular: the radial bins), each held
    ``copies`` times while a tile is processed; ``extra_mb`` held for the whole scan; ``potentials``
    potentials held at once. ``budget_mb`` None = no limit (one tile). Tiles are whole rows of the
    scan when they fit (contiguous writes), else square-ish blocks.
    Raises ConfigError naming ``key`` when not even one probe position fits."""
    ny, nx = (int(v) for v in scan)
    fixed = _fixed_mb(grid, n_slices, batch, supersampling, real_bytes, potentials) + float(extra_mb)
    per_probe = det_pixels * real_bytes * copies / MB
    if budget_mb is None:
        return ScanTiling(scan=(ny, nx), tile=(ny, nx), batch=batch, fixed_mb=fixed, peak_mb=fixed + ny * nx * per_probe,
                          budget_mb=None, per_probe_mb=per_probe)
    room = SAFETY * float(budget_mb) - fixed
    if room < per_probe:
        need = (fixed + per_probe) / SAFETY
        raise ConfigError(
            f"config key '{key}': {float(budget_mb):,.0f} MB cannot hold the STEM potential, one probe batch and one probe "
            f"({fixed:,.0f} MB for a {grid[0]}×{grid[1]} grid × {n_slices} slices × {potentials} potential(s), batch "
            f"{batch}, + {per_probe:,.2f} MB of detector data per probe, planned at {SAFETY:.0%} of the budget); allowed: "
            f"{key} >= {math.ceil(need):,} or a coarser potential_sampling / thinner sample / smaller max_batch")
    fit = max(1, int(room // per_probe)) if per_probe > 0 else ny * nx  # abTEM caps a batch at the tile
    if fit >= ny * nx:
        tile = (ny, nx)
    elif fit >= nx:
        tile = (fit // nx, nx)
    else:
        side = max(1, int(math.isqrt(fit)))
        tile = (min(side, ny), min(max(1, fit // side), nx))
    return ScanTiling(scan=(ny, nx), tile=tile, batch=batch, fixed_mb=fixed,
                      peak_mb=fixed + tile[0] * tile[1] * per_probe, budget_mb=float(budget_mb), per_probe_mb=per_probe)


def potential_shape(atoms, s) -> tuple[tuple[int, int], int]:
    """(grid points (gx, gy), slices) of the potential :func:`twistox.stem.multislice.build_potential`
    makes for ``atoms`` with ProbeSettings ``s``, without building it (for planning before the work)."""
    from twistox.stem.optics import grid_points

    grid = tuple(grid_points(float(atoms.cell[i, i]), s.potential_sampling) for i in (0, 1))
    return grid, max(1, math.ceil(float(atoms.cell[2, 2]) / s.slice_thickness - 1e-9))


def iter_tiles(t: ScanTiling) -> Iterator[tuple[slice, slice]]:
    """(y slice, x slice) of every tile, row-major; together they cover the scan exactly once."""
    (ny, nx), (ty, tx) = t.scan, t.tile
    for y0 in range(0, ny, ty):
        for x0 in range(0, nx, tx):
            yield slice(y0, min(y0 + ty, ny)), slice(x0, min(x0 + tx, nx))


def tile_scan(scan, ys: slice, xs: slice):
    """The abTEM GridScan of one tile (rows ``ys`` = y, columns ``xs`` = x) of ``scan`` (a GridScan
    with endpoint=False, as ``multislice.grid_scan`` makes): the same probe positions as that part
    of the full scan, so tiles computed one after another and joined equal the full scan."""
    import abtem

    (x0, y0), (x1, y1) = scan.start, scan.end
    nx, ny = scan.gpts
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    return abtem.GridScan(start=(x0 + xs.start * dx, y0 + ys.start * dy), end=(x0 + xs.stop * dx, y0 + ys.stop * dy),
                          gpts=(xs.stop - xs.start, ys.stop - ys.start), endpoint=False)
