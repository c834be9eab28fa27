"""Electron optics and simulation grids: wavelength, interaction parameter, angular reach, FFT sizes.

Energies in eV, lengths in Å, angles in mrad. The electron wavelength and interaction parameter
come from abTEM's energy helpers (``abtem.core.energy``), imported on first use (abTEM takes ~3 s
to import), so the whole package shares one set of constants.
"""

from __future__ import annotations

import math
from functools import lru_cache

ANTIALIAS_CUTOFF = 2.0 / 3.0  # abTEM's default antialias aperture (fraction of the Nyquist frequency)
FFT_PRIMES = (2, 3, 5, 7)


@lru_cache(maxsize=32)
def wavelength(energy: float) -> float:
    """Relativistic electron wavelength [Å] at ``energy`` [eV] (abTEM's ``energy2wavelength``)."""
    if not energy > 0:
        raise ValueError(f"beam energy must be > 0 eV, got {energy}")
    from abtem.core.energy import energy2wavelength

    return float(energy2wavelength(float(energy)))


@lru_cache(maxsize=32)
def interaction_parameter(energy: float) -> float:
    """Interaction parameter σ [rad/(V·Å)] at ``energy`` [eV] (abTEM's ``energy2sigma``)."""
    if not energy > 0:
        raise ValueError(f"beam energy must be > 0 eV, got {energy}")
    from abtem.core.energy import energy2sigma

    return float(energy2sigma(float(energy)))


def max_scattering_angle(sampling: float, energy: float, cutoff: float = ANTIALIAS_CUTOFF) -> float:
    """Largest scattering angle [mrad] a grid of ``sampling`` [Å] resolves after the antialias aperture."""
    return cutoff * wavelength(energy) / (2.0 * sampling) * 1e3


def max_sampling_for_angle(angle: float, energy: float, cutoff: float = ANTIALIAS_CUTOFF) -> float:
    """Coarsest sampling [Å] that still resolves ``angle`` [mrad]."""
    return cutoff * wavelength(energy) / (2.0 * angle * 1e-3)


def fft_friendly(n: int, primes: tuple[int, ...] = FFT_PRIMES) -> int:
    """Smallest integer >= n whose prime factors are all in ``primes`` (fast FFT sizes)."""
    n = max(1, int(n))
    while True:
        m = n
        for p in primes:
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def grid_points(extent: float, max_sampling: float) -> int:
    """FFT-friendly number of grid points with sampling <= ``max_sampling`` over ``extent`` [Å]."""
    return fft_friendly(math.ceil(extent / max_sampling - 1e-9))


def disc_radius_px(period: float, semiangle: float, energy: float) -> float:
    """Bright-field disc radius in detector pixels for a periodic cell of ``period`` [Å]: the
    diffraction pixel is λ/period rad, so the radius is α·period/λ."""
    return semiangle * 1e-3 * period / wavelength(energy)


def fourd_tiling(period: float, semiangle: float, energy: float, min_disc_radius_px: float) -> int:
    """Lateral repeats n of a cell of ``period`` [Å] so the BF disc spans >= ``min_disc_radius_px``."""
    return max(1, math.ceil(min_disc_radius_px / disc_radius_px(period, semiangle, energy) - 1e-9))


def probe_cutoff_period(semiangle: float, energy: float) -> float:
    """Shortest period [Å] the probe intensity transfers: λ/(2α) (a smaller cell gives COM ≈ 0)."""
    return wavelength(energy) / (2.0 * semiangle * 1e-3)
