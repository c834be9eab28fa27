"""Per-atom values -> periodic grids, truncated 2D Fourier series, dominant period.

Grid: square supercell of side L (Å), n x n cell-centred points x_i = (i + 1/2) L / n,
arrays indexed [y, x]. Fourier convention (docs/architecture.md):
    f(x, y) = sum_{|h|,|k| <= N} c[h, k] exp(2 pi i (h x + k y) / L),
h along x, k along y, c[-h, -k] = conj(c[h, k]) for a real field.
"""

from __future__ import annotations

import numpy as np


def grid_coords(L: float, n: int) -> np.ndarray:
    """Cell-centred grid coordinates (Å)."""
    return (np.arange(n) + 0.5) * L / n


def grid_size(L: float, spacing: float, min_points: int = 0) -> int:
    """Even number of grid points with spacing <= ``spacing`` Å (and >= min_points)."""
    n = max(int(np.ceil(L / spacing)), int(min_points))
    return n + (n % 2)


def _periodic_gauss(grid: np.ndarray, pts: np.ndarray, L: float, sigma: float) -> np.ndarray:
    """exp(-(g - p + mL)^2 / 2 sigma^2) summed over enough images m: (len(grid), len(pts))."""
    d = grid[:, None] - pts[None, :]
    d -= L * np.round(d / L)
    m_max = int(np.ceil(4.0 * sigma / L))
    out = np.zeros_like(d)
    for m in range(-m_max - 1, m_max + 2):
        out += np.exp(-0.5 * ((d + m * L) / sigma) ** 2)
    return out


def grid_periodic(xy: np.ndarray, values: np.ndarray, L: float, n: int, sigma: float) -> np.ndarray:
    """Gaussian-kernel (Nadaraya-Watson) average of scattered values on the periodic n x n grid.

    The kernel is periodic (images summed), so the grid has no seam at the cell edge.
    ``values`` (M,) or (M, C); NaN values are ignored. Returns (n, n) or (n, n, C), [y, x].
    Separable kernel: numerator = Gy diag(v) Gx^T, two small matrix products.
    """
    xy = np.asarray(xy, float)
    v = np.asarray(values, float)
    vec = v.ndim == 2
    v2 = v if vec else v[:, None]
    good = np.all(np.isfinite(v2), axis=1)
    xy, v2 = xy[good], v2[good]
    g = grid_coords(L, n)
    gx = _periodic_gauss(g, np.mod(xy[:, 0], L), L, sigma)
    gy = _periodic_gauss(g, np.mod(xy[:, 1], L), L, sigma)
    den = gy @ gx.T
    out = np.stack([(gy * v2[:, c]) @ gx.T for c in range(v2.shape[1])], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / den[..., None]
    out[den < 1e-12] = np.nan
    return out if vec else out[..., 0]


def fourier_fit(field: np.ndarray, order: int) -> np.ndarray:
    """Coefficients c[h, k] (h, k in -N..N; array index [h + N, k + N]) of a gridded field [y, x].

    On a uniform grid the least-squares truncated series is the truncated DFT, exact for
    a field band-limited to |h|, |k| <= N when n > 2N.
    """
    ny, nx = field.shape
    N = int(order)
    if ny != nx or nx <= 2 * N:
        raise ValueError(f"fourier_order: {N} needs a square grid with more than {2 * N} points; got {field.shape}")
    n = nx
    F = np.fft.fft2(field) / (n * n)  # F[k, h] (axis 0 = y)
    hs = np.arange(-N, N + 1)
    c = F[np.ix_(hs % n, hs % n)].T  # -> [h, k]
    # cell-centred grid: x_i = (i + 1/2) L/n shifts the phase by pi (h + k) / n
    phase = np.exp(-1j * np.pi * (hs[:, None] + hs[None, :]) / n)
    return c * phase


def fourier_eval(c: np.ndarray, x: np.ndarray, y: np.ndarray, L: float) -> np.ndarray:
    """Evaluate the real series at points (x, y) (Å, same shape)."""
    N = (c.shape[0] - 1) // 2
    hs = np.arange(-N, N + 1)
    ex = np.exp(2j * np.pi * np.multiply.outer(np.asarray(x), hs) / L)  # (..., h)
    ey = np.exp(2j * np.pi * np.multiply.outer(np.asarray(y), hs) / L)  # (..., k)
    return np.real(np.einsum("...h,hk,...k->...", ex, c, ey))


def fourier_grid(c: np.ndarray, L: float, n: int) -> np.ndarray:
    """The series on the n x n cell-centred grid, [y, x]."""
    g = grid_coords(L, n)
    X, Y = np.meshgrid(g, g)
    return fourier_eval(c, X, Y, L)


def dominant_period(field: np.ndarray, L: float, max_order: int | None = None) -> tuple[float, tuple[int, int]]:
    """Period (Å) of the strongest non-zero harmonic of a gridded periodic field, and its (h, k).

    Harmonics (h, k) and (-h, -k) are the same wave; its wavelength is L / sqrt(h^2 + k^2).
    Ties in power go to the longer wavelength.
    """
    n = field.shape[0]
    f = np.nan_to_num(field - np.nanmean(field))
    P = np.abs(np.fft.fft2(f)) ** 2
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
