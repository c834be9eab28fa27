"""Coincidence-site-lattice (CSL) maths for twisted square lattices.

tan(theta/2) = n/m with m > n >= 1, gcd(m, n) = 1. Sigma = m^2 + n^2 for m + n odd,
(m^2 + n^2)/2 for m, n both odd. Square symmetry makes theta and 90 - theta the
same structure, so every CSL is represented by (m, n) with theta <= 45 deg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class CSL:
    """A commensurate twist of two square lattices."""

    m: int
    n: int
    sigma: int
    theta_deg: float
    theta_requested_deg: float | None = None

    @property
    def frame_angle_deg(self) -> float:
        """Rotation of the global frame that makes the supercell axis-aligned (deg)."""
        return 45.0 if (self.m % 2 == 1 and self.n % 2 == 1) else 0.0

    @property
    def layer_angles_deg(self) -> tuple[float, float]:
        """Angle of each layer's [100] axis to global x (deg): bottom, top."""
        f = self.frame_angle_deg
        return (f - self.theta_deg / 2.0, f + self.theta_deg / 2.0)

    @property
    def name(self) -> str:
        """Sample name recording the exact angle and the CSL indices."""
        return f"theta{self.theta_deg:.2f}_m{self.m}n{self.n}"

    def supercell_length(self, a: float) -> float:
        """Side of the square supercell (same units as a)."""
        return a * math.sqrt(self.sigma)

    def moire_period(self, a: float) -> float:
        """Geometric moire period lambda = a / (2 sin(theta/2))."""
        return a / (2.0 * math.sin(math.radians(self.theta_deg) / 2.0))


def sigma_of(m: int, n: int) -> int:
    """Coincidence index of the (m, n) twist."""
    s = m * m + n * n
    return s // 2 if (m % 2 == 1 and n % 2 == 1) else s


def theta_of(m: int, n: int) -> float:
    """Twist angle (deg) with tan(theta/2) = n/m."""
    return math.degrees(2.0 * math.atan2(n, m))


def validate_angle(theta_deg: float, key: str = "theta_deg") -> float:
    """Return theta as float or raise ValueError naming the key and the allowed range."""
    try:
        t = float(theta_deg)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: {theta_deg!r} is not a number; allowed: 0 < theta < 90 deg") from None
    if not math.isfinite(t) or not (0.0 < t < 90.0):
        raise ValueError(f"{key}: {theta_deg!r} is outside the allowed range 0 < theta < 90 deg")
    return t


@lru_cache(maxsize=64)
def _csl_table(max_sigma: int) -> tuple[tuple[int, int, int, float], ...]:
    """All CSLs with Sigma <= max_sigma and theta <= 45 deg: (m, n, sigma, theta)."""
    out = []
    # theta <= 45 deg  <=>  n/m <= tan(22.5 deg); Sigma >= (m^2 + n^2)/2 bounds m.
    m_max = int(math.isqrt(2 * max_sigma)) + 1
    t225 = math.tan(math.radians(22.5)) + 1e-12
    for m in range(2, m_max + 1):
        for n in range(1, m):
            if n / m > t225:
                break
            if math.gcd(m, n) != 1:
                continue
            s = sigma_of(m, n)
            if s <= max_sigma:
                out.append((m, n, s, theta_of(m, n)))
    return tuple(out)


def nearest_csl(theta_deg: float, max_sigma: int = 300, max_error_deg: float | None = None) -> CSL:
    """Commensurate twist closest to theta_deg with Sigma <= max_sigma.

    theta and 90 - theta are equivalent; angles above 45 deg are folded. Ties go to
    the smaller Sigma. If ``max_error_deg`` is given and the nearest CSL is further
    away, raise ValueError saying which Sigma would reach the angle.
    """
    t = validate_angle(theta_deg)
    if int(max_sigma) < 5:
        raise ValueError(f"max_sigma: {max_sigma!r} is too small; allowed: integer >= 5 (Sigma5 is the smallest CSL)")
    folded = min(t, 90.0 - t)
    table = _csl_table(int(max_sigma))
    m, n, s, th = min(table, key=lambda r: (round(abs(r[3] - folded), 9), r[2]))
    if max_error_deg is not None and abs(th - folded) > max_error_deg:
        need = _sigma_needed(folded, max_error_deg)
        raise ValueError(
            f"max_sigma: {max_sigma} cannot reach theta = {t:g} deg within {max_error_deg:g} deg "
            f"(nearest is Sigma{s} at {th:.3f} deg); allowed: max_sigma >= {need} for this angle"
        )
    return CSL(m=m, n=n, sigma=s, theta_deg=th, theta_requested_deg=t)


def _sigma_needed(folded_deg: float, tol: float) -> int:
    """Smallest Sigma of a CSL within tol of the folded angle."""
    half = math.tan(math.radians(folded_deg) / 2.0)
    best = None
    for m in range(2, 5000):
        for n in (math.floor(half * m), math.ceil(half * m)):
            if n < 1 or n >= m or math.gcd(m, n) != 1:
                continue
            if abs(theta_of(m, n) - folded_deg) <= tol:
                s = sigma_of(m, n)
                best = s if best is None else min(best, s)
        if best is not None and m * m / 2 > best:
            break
    return best if best is not None else -1


def rotation2(angle_deg: float) -> np.ndarray:
    """2x2 rotation matrix."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, -s], [s, c]])


def shortest_basis(m: int, n: int) -> np.ndarray:
    """Shortest basis of the coincidence lattice, in bottom-layer lattice units.

    Returns a 2x2 integer matrix whose columns p1, p2 are lattice vectors of the bottom
    layer that are also lattice vectors of the top layer (rotated by theta relative to
    it). Found numerically and checked: |det| == Sigma and both vectors coincide.
    """
    theta = theta_of(m, n)
    rot = rotation2(-theta)  # maps a bottom-layer vector into top-layer lattice units
    r = int(math.isqrt(m * m + n * n)) + 1
    i, j = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    p = np.stack([i.ravel(), j.ravel()], axis=1)
    p = p[(p != 0).any(axis=1)]
    q = p @ rot.T
    shared = p[np.all(np.abs(q - np.round(q)) < 1e-9, axis=1)]
    shared = shared[np.argsort((shared**2).sum(1), kind="stable")]
    sigma = sigma_of(m, n)
    p1 = shared[0]
    for p2 in shared[1:]:
        det = p1[0] * p2[1] - p1[1] * p2[0]
        if abs(det) == sigma:
            basis = np.array([p1, p2] if det > 0 else [p2, p1]).T
            break
    else:  # pragma: no cover - would mean the CSL theory above is wrong
        raise RuntimeError(f"no CSL basis of area {sigma} found for (m, n) = ({m}, {n})")
    if abs(round(np.linalg.det(basis))) != sigma:
        raise RuntimeError("CSL basis check failed")
    return basis.astype(int)
