"""Per-atom values -> periodic grids (Gaussian kernel average, no seam at the cell edge).

Grid: square supercell of side L (Å), n x n cell-centred points x_i = (i + 1/2) L / n, arrays
indexed [y, x].
"""

from __future__ import annotations

import numpy as np


class NonFiniteFieldError(ValueError):
    """A gridded field has cells no finite atom value reaches (it would silently corrupt the Fourier fit)."""


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
    ``values`` (M,) or (M, C); rows with a non-finite value are left out (callers count them);
    cells that no finite value reaches (kernel weight < 1e-12) are NaN. Returns (n, n) or (n, n, C), [y, x].
    Separable kernel: numerator = Gy diag(v) Gx^T, two small matrix products.
    """
    xy = np.asarray(xy, float)
    v = np.asarray(values, float)
    vec = v.ndim == 2
    v2 = v if vec else v[:, None]
    good = np.all(np.isfinite(v2), axis=1) & np.all(np.isfinite(xy), axis=1)
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


def grid_complete(xy: np.ndarray, values: np.ndarray, L: float, n: int, sigma: float, what: str) -> np.ndarray:
    """``grid_periodic`` that must cover every cell: raise NonFiniteFieldError naming ``what`` otherwise.

    A hole in a field that is Fourier-fit (and so drives the phase-field eigenstrain) is an error,
    never a silent zero."""
    out = grid_periodic(xy, values, L, n, sigma)
    bad = ~np.isfinite(out)
    if bad.any():
        v = np.asarray(values, float)
        n_bad_atoms = int((~np.isfinite(v.reshape(len(v), -1))).any(axis=1).sum())
        raise NonFiniteFieldError(
            f"{what}: {int(bad.sum())} of {bad.size} grid cells have no finite atom value within reach of the "
            f"kernel ({n_bad_atoms} of {len(v)} atoms have non-finite values); the Fourier fit needs a complete "
            f"field: check the relaxed structure, or raise strain.smoothing_sigma (now {sigma} Å)")
    return out
