"""abTEM set-up shared by the plan-view, cross-section and 4D-STEM simulations.

abTEM arrays are indexed [x, y]; the functions here hand back NumPy arrays in abTEM's order and
the callers turn them into xarray (..., y, x). abTEM is imported lazily (~3 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twistox.stem.optics import grid_points


@dataclass(frozen=True)
class ProbeSettings:
    """Probe and multislice settings of one simulation [Å, mrad, eV]; built from the config by
    :func:`probe_settings` (the schema holds the defaults)."""

    energy: float
    semiangle: float
    potential_sampling: float  # upper bound; the grid is FFT-friendly and at least this fine
    scan_sampling: float
    slice_thickness: float
    parametrization: str
    supersampling: int  # potential built n x finer, then Fourier-cropped (see build_potential)
    cs: float = 0.0  # C30 [Å]; 0 = no spherical aberration
    device: str = "cpu"
    max_batch: int | str = "auto"

    def key(self) -> dict:
        """Settings that change the result (device and batching do not)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("device", "max_batch")}


def probe_settings(cfg: dict, part: str, device: str) -> ProbeSettings:
    """ProbeSettings of one part ('planview', 'cross_section', 'fourd') of the validated ``stem`` config."""
    p = cfg[part]
    return ProbeSettings(energy=float(cfg["energy_kev"]) * 1e3, semiangle=float(p["semiangle_mrad"]),
                         cs=float(p.get("cs_um", 0.0)) * 1e4, potential_sampling=float(p["potential_sampling"]),
                         scan_sampling=float(p["scan_sampling"]), slice_thickness=float(cfg["slice_thickness"]),
                         parametrization=cfg["parametrization"], supersampling=int(cfg["potential_supersampling"]),
                         device=device, max_batch=cfg["max_batch"])


def configure_abtem(device: str, precision: str, threads: int) -> None:
    """Global abTEM settings: device ('cpu'/'gpu'), FFTW, precision, threads, no progress bars.

    FFTW plans are made with ``FFTW_ESTIMATE``, not abTEM's default ``FFTW_MEASURE``: MEASURE
    times candidate algorithms and keeps the fastest, so the plan -- and the last bits of every
    transform (~1e-7 relative in float32) -- depends on the machine's load at planning time and
    on what the process planned before. A sub-simulation resumed in a new process then differed
    from the uninterrupted run (seen: adf_radial by 1.2e-7, which the Poisson dose noise turns
    into whole-count flips). ESTIMATE plans are a function of the transform shape alone
    (also bit-identical for 1, 2, 4 FFTW threads, checked); cost: batched 2D FFTs ~20-30 %
    slower on this CPU, while the planning time (~1 s per shape) disappears. FFTW reuses wisdom
    of a stricter planner for an ESTIMATE plan, so wisdom already in the process (from code that
    planned with MEASURE) is forgotten here."""
    import abtem

    abtem.config.set({"device": device, "precision": precision, "fft": "fftw",
                      "fftw.planning_effort": "FFTW_ESTIMATE",
                      "fftw.threads": int(threads), "mkl.threads": int(threads),
                      "diagnostics.progress_bar": False})
    try:
        import pyfftw
    except ImportError:  # abTEM then cannot use FFTW either
        return
    pyfftw.forget_wisdom()


def fourier_crop(array, gpts: tuple[int, int]):
    """Band-limit and resample periodic real arrays (..., nx, ny) to ``gpts`` by cropping their spectrum.

    Keeps the mean (values, not sums). Works on NumPy or CuPy arrays."""
    from twistox.core.device import array_module

    xp = array_module(array)
    F = xp.fft.fft2(array, axes=(-2, -1))
    out = xp.zeros(array.shape[:-2] + tuple(gpts), dtype=F.dtype)
    idx = []
    for N, n in zip(array.shape[-2:], gpts):
        k = np.fft.fftfreq(N, 1.0 / N).astype(int)
        # symmetric band |k| <= (n-1)//2: an unpaired Nyquist term would break inversion symmetry
        # (measured: a spurious uniform COM of ~0.002 mrad); it lies beyond the antialias aperture anyway
        keep = np.nonzero(np.abs(k) <= (n - 1) // 2)[0]
        idx.append((keep, k[keep] % n))
    (ix, ox), (iy, oy) = idx
    out[..., ox[:, None], oy[None, :]] = F[..., ix[:, None], iy[None, :]]
    scale = (gpts[0] * gpts[1]) / (array.shape[-2] * array.shape[-1])
    return (xp.fft.ifft2(out, axes=(-2, -1)).real * scale).astype(array.dtype)


def build_potential(atoms, s: ProbeSettings, periodic: bool = True):
    """abTEM potential on an FFT-friendly grid, built once (reused for every focus / scan chunk).

    With ``supersampling`` n > 1 the slices are built on an n-times finer grid and Fourier-cropped:
    abTEM spreads each atom bilinearly over the four nearest pixels, which attenuates the
    high-angle scattering of atoms between pixels (measured: HAADF of a half-pixel Sr column 40 %
    low at 0.058 Å; tests/test_stem.py); the finer build removes most of that error.
    """
    import abtem
    from abtem.potentials.iam import PotentialArray

    pos = atoms.get_positions()
    if not np.isfinite(pos).all():
        raise ValueError("STEM specimen: non-finite atom positions (NaN/inf); check the input structure")
    gpts = tuple(grid_points(float(atoms.cell[i, i]), s.potential_sampling) for i in (0, 1))
    n = int(s.supersampling)
    pot = abtem.Potential(atoms, gpts=tuple(n * g for g in gpts), slice_thickness=s.slice_thickness,
                          parametrization=s.parametrization, projection="infinite", periodic=periodic,
                          device=s.device)
    if n == 1:
        return pot.build(lazy=False)
    chunk = 8  # slices per fine build: bounds the memory of the n^2-larger grid
    parts = [fourier_crop(pot.build(first_slice=i, last_slice=min(i + chunk, pot.num_slices), lazy=False).array, gpts)
             for i in range(0, pot.num_slices, chunk)]
    from twistox.core.device import array_module

    return PotentialArray(array_module(parts[0]).concatenate(parts), slice_thickness=pot.slice_thickness,
                          extent=pot.extent)


def batch_size(s: ProbeSettings, pot) -> int | str:
    """Probe positions per batch. On CPU ~8 MB wave batches stay cache-friendly: measured ~2x faster
    than abTEM's 128 MB default chunks (benchmarks/bench_stem.py); on GPU abTEM's auto is kept."""
    if s.max_batch != "auto":
        return int(s.max_batch)
    if s.device != "cpu":
        return "auto"
    nx, ny = pot.gpts
    return max(1, int(8e6 // (8 * nx * ny)))


def make_probe(pot, s: ProbeSettings, defocus: float = 0.0):
    """abTEM probe matched to the potential's grid; ``defocus`` [Å] in abTEM's sign (positive =
    focused that far below the entrance plane)."""
    import abtem

    probe = abtem.Probe(energy=s.energy, semiangle_cutoff=s.semiangle, defocus=defocus, Cs=s.cs, device=s.device)
    probe.grid.match(pot)
    return probe


def grid_scan(start: tuple[float, float], end: tuple[float, float], sampling: float):
    """Scan [start, end) with a step <= ``sampling`` [Å] that divides the extent exactly."""
    import abtem

    gpts = tuple(max(1, math.ceil((e - b) / sampling - 1e-9)) for b, e in zip(start, end))
    return abtem.GridScan(start=start, end=end, gpts=gpts, endpoint=False)


def to_numpy(a) -> np.ndarray:
    """Dask / CuPy / NumPy -> NumPy."""
    if hasattr(a, "compute"):
        a = a.compute()
    if hasattr(a, "get"):  # CuPy -> host
        a = a.get()
    return np.asarray(a)


def scan_coords(scan) -> tuple[np.ndarray, np.ndarray]:
    """Probe positions [Å] along x and y of an abTEM GridScan."""
    pos = np.asarray(scan.get_positions())  # (nx, ny, 2)
    return pos[:, 0, 0], pos[0, :, 1]
