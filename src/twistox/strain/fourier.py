"""Truncated 2D Fourier series of periodic fields, the Fourier order in moiré harmonics, dominant period.

Fourier convention (docs/architecture.md), square supercell of side L (Å), arrays [y, x]:
    f(x, y) = sum_{|h|,|k| <= N} c[h, k] exp(2 pi i (h x + k y) / L),
h along x, k along y, c[-h, -k] = conj(c[h, k]) for a real field.

Moiré order: ``strain.fourier_order`` N counts harmonics of the moiré period lambda, i.e. it keeps
every wave of wavelength >= lambda / N. In supercell harmonics that is |h|, |k| <= N_sc with
N_sc = round(N L / lambda) (a wave of wavelength lambda / N has |(h, k)| = N L / lambda, and each
integer component is at most that). At 20 degrees (Sigma149, L / lambda = 4.24) N = 6 -> N_sc = 25.
"""

from __future__ import annotations

import numpy as np

from .gridding import grid_coords


def supercell_order(moire_order: int, L: float, moire_period: float) -> int:
    """N_sc = round(N L / lambda): supercell harmonics that hold every moiré harmonic of order <= N."""
    if not (np.isfinite(moire_period) and moire_period > 0):
        raise ValueError(f"supercell_order: moiré period {moire_period} Å must be a positive number")
    return max(int(round(moire_order * L / moire_period)), int(moire_order))


def moire_harmonics(layer_angles_deg, a: float, L: float) -> np.ndarray:
    """(2, 2) integer supercell harmonics (h, k) of the moiré reciprocal basis G_i = b_i(top) - b_i(bottom).

    b_i(layer) = (2 pi / a) R(angle) e_i; in units of 2 pi / L both are integer on a CSL supercell.
    Raises ValueError if the supercell is not commensurate with the two layers."""
    phi = np.radians(np.asarray(layer_angles_deg, float))
    out = np.zeros((2, 2))
    for i, e in enumerate((np.array([1.0, 0.0]), np.array([0.0, 1.0]))):
        rb = np.array([[np.cos(phi[0]), -np.sin(phi[0])], [np.sin(phi[0]), np.cos(phi[0])]]) @ e
        rt = np.array([[np.cos(phi[1]), -np.sin(phi[1])], [np.sin(phi[1]), np.cos(phi[1])]]) @ e
        out[i] = (L / a) * (rt - rb)
    hk = np.round(out)
    if np.abs(out - hk).max() > 1e-6:
        raise ValueError(f"moire_harmonics: layer angles {list(layer_angles_deg)} and L = {L} Å are not commensurate")
    return hk.astype(int)


def fourier_fit(field: np.ndarray, order: int) -> np.ndarray:
    """Coefficients c[h, k] (h, k in -N..N; array index [h + N, k + N]) of a gridded field [y, x].

    On a uniform grid the least-squares truncated series is the truncated DFT, exact for a field
    band-limited to |h|, |k| <= N when n > 2N. A non-finite grid value raises ValueError (an FFT
    would spread it over every coefficient; skipping the fit would leave silent zeros)."""
    ny, nx = field.shape
    N = int(order)
    if ny != nx or nx <= 2 * N:
        raise ValueError(f"fourier_order: {N} needs a square grid with more than {2 * N} points; got {field.shape}")
    bad = ~np.isfinite(field)
    if bad.any():
        raise ValueError(f"fourier_fit: {int(bad.sum())} of {field.size} grid values are not finite")
    n = nx
    F = np.fft.fft2(field) / (n * n)  # F[k, h] (axis 0 = y)
    hs = np.arange(-N, N + 1)
    c = F[np.ix_(hs % n, hs % n)].T  # -> [h, k]
    # cell-centred grid: x_i = (i + 1/2) L/n shifts the phase by pi (h + k) / n
    phase = np.exp(-1j * np.pi * (hs[:, None] + hs[None, :]) / n)
    return c * phase


def _waves(t: np.ndarray, N: int, L: float) -> np.ndarray:
    return np.exp(2j * np.pi * np.multiply.outer(t, np.arange(-N, N + 1)) / L)


def fourier_eval(c: np.ndarray, x: np.ndarray, y: np.ndarray, L: float) -> np.ndarray:
    """Evaluate the real series at points (x, y) (Å, same shape)."""
    N = (c.shape[0] - 1) // 2
    x = np.asarray(x, float)
    ex = _waves(x.ravel(), N, L)  # (M, h)
    ey = _waves(np.asarray(y, float).ravel(), N, L)  # (M, k)
    return np.real(((ex @ c) * ey).sum(axis=-1)).reshape(x.shape)


def fourier_grid(c: np.ndarray, L: float, n: int) -> np.ndarray:
    """The series on the n x n cell-centred grid, [y, x] (separable: E_y c^T E_x^T)."""
    N = (c.shape[0] - 1) // 2
    e = _waves(grid_coords(L, n), N, L)  # (n, h) = (n, k)
    return np.real(e @ c.T @ e.T)


def dominant_period(field: np.ndarray, L: float, max_order: int | None = None, atol: float = 0.0,
                    rtol: float = 1e-12) -> tuple[float, tuple[int, int]]:
    """Period (Å) of the strongest non-zero harmonic of a gridded periodic field, and its (h, k).

    ``field`` (n, n) or a stack (..., n, n) whose power spectra are summed (sign-blind: two planes
    whose patterns have opposite signs reinforce). Harmonics (h, k) and (-h, -k) are the same wave;
    its wavelength is L / sqrt(h^2 + k^2). Ties in power go to the longer wavelength. A flat field
    (rms variation <= ``atol`` (field units) or <= ``rtol`` times its largest magnitude) has no period:
    (nan, (0, 0)); round-off of an ideal lattice (~1e-15) would otherwise pick a random harmonic.
    """
    f = np.asarray(field, float)
    f = f.reshape((-1,) + f.shape[-2:])
    n = f.shape[-1]
    f = np.nan_to_num(f - np.nanmean(f, axis=(-2, -1), keepdims=True))
    scale = max(float(np.nanmax(np.abs(np.asarray(field, float)))), 1e-300)
    if np.sqrt(np.mean(f**2)) <= max(atol, rtol * scale) or not np.any(f):
        return float("nan"), (0, 0)
    P = (np.abs(np.fft.fft2(f)) ** 2).sum(axis=0)
    ks = np.fft.fftfreq(n, 1.0 / n).astype(int)
    K, H = np.meshgrid(ks, ks, indexing="ij")  # axis 0 = y (k), axis 1 = x (h)
    r2 = H**2 + K**2
    mask = r2 > 0
    if max_order is not None:
        mask &= (np.abs(H) <= max_order) & (np.abs(K) <= max_order)
    score = np.where(mask, P, -1.0)
    best = np.max(score)
    cand = np.flatnonzero((score >= best * (1 - 1e-9)) & mask)
    idx = cand[np.argmin(r2.ravel()[cand])]
    h, k = int(H.ravel()[idx]), int(K.ravel()[idx])
    return L / float(np.hypot(h, k)), (h, k)
