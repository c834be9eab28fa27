"""Periodicity of fields and images: Fourier period with uncertainty, and dark-line spacings.

Lengths in Å. A periodic field on one supercell can only hold harmonics L/|(h, k)|, so its
period is exact (uncertainty 0); a measured image is windowed (Hann), zero padded, and the
spectral peak refined by a parabola in log power; its uncertainty is the peak's half width
at half maximum converted to a period (a resolution bound, conservative for clean data).
The paper's cross-section spacings (d₁ = 4.0 ± 0.3 nm, d₂ = 3.0 ± 0.3 nm at 5°) are real-space
statistics of the distances between neighbouring dark lines: `line_spacing` gives those.
"""

from __future__ import annotations

from dataclasses import dataclass, field, asdict

import numpy as np
from scipy import ndimage


@dataclass
class Period:
    """A measured period (Å) with uncertainty (Å), direction (deg from x, 2D only) and method."""

    value: float
    uncertainty: float
    method: str
    direction_deg: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Spacing:
    """Spacing of dark (or bright) lines: mean ± std (Å) over n neighbouring pairs; positions (Å)."""

    mean: float
    std: float
    sem: float
    n: int
    positions: np.ndarray = field(repr=False)
    fourier: Period | None = None


def _parabolic(y: np.ndarray, i: int) -> float:
    """Sub-sample offset of the extremum at index i from a parabola through i-1, i, i+1."""
    if i <= 0 or i >= len(y) - 1:
        return 0.0
    a, b, c = y[i - 1], y[i], y[i + 1]
    den = a - 2 * b + c
    return 0.0 if den == 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


def fourier_period(profile, dx: float, *, periodic: bool = False, min_period: float | None = None,
                   max_period: float | None = None, pad: int = 16) -> Period:
    """Dominant period (Å) of a 1D profile sampled every dx Å.

    periodic=True: the profile is one period of a periodic signal, the period is
    N dx / h for the strongest harmonic h (exact). Otherwise: Hann window, zero padding x pad,
    parabolic refinement of the log-power peak; uncertainty = HWHM of the peak (as a period).
    Only periods in [min_period, max_period] are considered (default [2 dx, N dx / 2]).
    """
    p = np.asarray(profile, float)
    if p.ndim != 1 or p.size < 4 or not np.all(np.isfinite(p)):
        raise ValueError("profile must be a finite 1D array with at least 4 samples")
    n = p.size
    lo = 2 * dx if min_period is None else min_period
    hi = (n * dx if periodic else n * dx / 2) if max_period is None else max_period
    p = p - p.mean()
    if periodic:
        power = np.abs(np.fft.rfft(p)) ** 2
        h = np.arange(power.size)
        per = np.where(h > 0, n * dx / np.maximum(h, 1), np.inf)
        ok = (h > 0) & (per >= lo) & (per <= hi)
        if not ok.any() or power[ok].max() <= 0:
            raise ValueError("no periodic component in the allowed range")
        i = np.flatnonzero(ok)[np.argmax(power[ok])]
        return Period(float(per[i]), 0.0, "fourier-periodic")
    w = np.hanning(n)
    m = pad * n
    power = np.abs(np.fft.rfft(p * w, m)) ** 2
    f = np.fft.rfftfreq(m, dx)
    ok = (f >= 1.0 / hi) & (f <= 1.0 / lo)
    if not ok.any() or power[ok].max() <= 0:
        raise ValueError("no periodic component in the allowed range")
    i = np.flatnonzero(ok)[np.argmax(power[ok])]
    lp = np.log(power + power.max() * 1e-30)
    f0 = f[i] + _parabolic(lp, i) * (f[1] - f[0])
    half = power[i] / 2
    a = i
    while a > 0 and power[a] > half:
        a -= 1
    b = i
    while b < power.size - 1 and power[b] > half:
        b += 1
    hwhm = 0.5 * (f[b] - f[a])
    return Period(float(1.0 / f0), float(hwhm / f0**2), "fourier-windowed")


def dominant_period_2d(field2d, dx: float, dy: float, *, periodic: bool = True, min_period: float | None = None
                       ) -> Period:
    """Strongest spatial period (Å) of a 2D field [y, x] and its wavevector direction (deg from x).

    periodic=True: exact harmonic of the cell, period 1/|(h/Lx, k/Ly)|. Otherwise Hann window,
    zero padding x4, peak with parabolic refinement per axis and HWHM-based uncertainty.
    """
    f = np.asarray(field2d, float)
    if f.ndim != 2 or not np.all(np.isfinite(f)):
        raise ValueError("field must be a finite 2D array [y, x]")
    ny, nx = f.shape
    f = f - f.mean()
    lo = 2 * max(dx, dy) if min_period is None else min_period
    pad = 1 if periodic else 4
    if not periodic:
        f = f * np.outer(np.hanning(ny), np.hanning(nx))
    P = np.abs(np.fft.fft2(f, s=(pad * ny, pad * nx))) ** 2
    ky = np.fft.fftfreq(pad * ny, dy)
    kx = np.fft.fftfreq(pad * nx, dx)
    KX, KY = np.meshgrid(kx, ky)
    K = np.hypot(KX, KY)
    kmin = 0.0 if periodic else 1.0 / (0.5 * min(nx * dx, ny * dy))
    ok = (K > max(kmin, 1e-12)) & (K <= 1.0 / lo)
    if not ok.any() or P[ok].max() <= 0:
        raise ValueError("no periodic component in the allowed range")
    idx = np.flatnonzero(ok.ravel())[np.argmax(P.ravel()[ok.ravel()])]
    iy, ix = np.unravel_index(idx, P.shape)
    if periodic:
        k0 = K[iy, ix]
        return Period(float(1.0 / k0), 0.0, "fourier-periodic",
                      float(np.degrees(np.arctan2(KY[iy, ix], KX[iy, ix])) % 180.0))
    lp = np.log(P + P.max() * 1e-30)
    fx = kx[ix] + _parabolic(lp[iy, :], ix) * (kx[1] - kx[0]) if 0 < ix < P.shape[1] - 1 else kx[ix]
    fy = ky[iy] + _parabolic(lp[:, ix], iy) * (ky[1] - ky[0]) if 0 < iy < P.shape[0] - 1 else ky[iy]
    k0 = float(np.hypot(fx, fy))
    # HWHM of the peak along the radial direction (power sampled with linear interpolation)
    dkx, dky = kx[1] - kx[0], ky[1] - ky[0]
    ps = np.fft.fftshift(P)
    cy, cx = P.shape[0] // 2, P.shape[1] // 2
    s = np.linspace(-0.5, 0.5, 401) * k0
    qx, qy = fx + s * fx / k0, fy + s * fy / k0
    prof = ndimage.map_coordinates(ps, [cy + qy / dky, cx + qx / dkx], order=1, mode="grid-wrap")
    i0 = int(np.argmax(prof))
    above = prof >= prof[i0] / 2
    a = i0
    while a > 0 and above[a - 1]:
        a -= 1
    b = i0
    while b < s.size - 1 and above[b + 1]:
        b += 1
    hwhm = 0.5 * (s[b] - s[a])
    return Period(1.0 / k0, float(hwhm / k0**2), "fourier-windowed", float(np.degrees(np.arctan2(fy, fx)) % 180.0))


def line_spacing(image, dx: float, *, axis: int = -1, dark: bool = True, min_period: float = 8.0,
                 periodic: bool = False, prominence: float = 0.2, rows: slice | None = None) -> Spacing:
    """Spacing (Å) of dark (dark=True) or bright lines running perpendicular to ``axis`` of an image.

    The image is averaged over the other axis (optionally only ``rows`` of it, e.g. the
    interface region), low-pass filtered (Gaussian, sigma = min_period / 4, which removes
    atomic fringes with periods below ~min_period / 2 while keeping the network), and its
    minima (or maxima) with prominence >= prominence x (max − min) located to sub-pixel
    precision. Spacings between neighbours (plus the wrap-around one if periodic) give
    mean, std and standard error; ``fourier`` holds the Fourier period of the same profile.
    """
    img = np.asarray(image, float)
    if img.ndim == 1:
        prof = img
    elif img.ndim == 2:
        img = np.moveaxis(img, axis, -1)
        if rows is not None:
            img = img[rows]
        prof = img.mean(axis=0)
    else:
        raise ValueError(f"image must be 1D or 2D, got shape {img.shape}")
    if not np.all(np.isfinite(prof)) or prof.size < 8:
        raise ValueError("image profile must be finite with at least 8 samples")
    sigma = min_period / 4.0 / dx
    prof = ndimage.gaussian_filter1d(prof, sigma, mode="wrap" if periodic else "reflect")
    s = -prof if dark else prof
    rng = s.max() - s.min()
    if rng <= 0:
        raise ValueError("image profile is flat: no lines to measure")
    n = s.size
    from scipy import signal  # imported here: scipy.signal costs ~2 s to import

    if periodic:
        # extend by wrapping so lines at the edges are found; keep those in [0, n)
        ext = np.concatenate([s[-n // 4:], s, s[: n // 4]])
        pk, _ = signal.find_peaks(ext, prominence=prominence * rng, distance=max(1, int(0.5 * min_period / dx)))
        pos = np.array([(k - n // 4) + _parabolic(ext, k) for k in pk], float)
        pos = np.sort(pos[(pos >= 0) & (pos < n)])
    else:
        pk, _ = signal.find_peaks(s, prominence=prominence * rng, distance=max(1, int(0.5 * min_period / dx)))
        pos = np.array([k + _parabolic(s, k) for k in pk], float)
    spacings = np.diff(pos)
    if periodic and pos.size >= 1:
        spacings = np.append(spacings, pos[0] + n - pos[-1])
    spacings = spacings * dx
    try:
        fp = fourier_period(prof, dx, periodic=periodic, min_period=min_period)
    except ValueError:
        fp = None
    if spacings.size == 0:
        return Spacing(float("nan"), float("nan"), float("nan"), 0, pos * dx, fp)
    std = float(spacings.std(ddof=1)) if spacings.size > 1 else 0.0
    return Spacing(float(spacings.mean()), std, std / np.sqrt(spacings.size), int(spacings.size), pos * dx, fp)


# --------------------------------------------------------------------------- network nodes

def _rot(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def moire_sites(a: float, layer_angles_deg, origins, L: float, shift=(0.0, 0.0)) -> np.ndarray:
    """Moiré sites (k, 2) in the square cell [0, L)² where the local registry of the two layers is ``shift``.

    Layer k is the lattice origins[k] + R(α_k) a Z² (α_k = layer_angles_deg[k], origins in Å, xy).
    Its fractional coordinate at r is u_k(r) = R(−α_k)(r − t_k)/a; the registry s(r) = u₁ − u₀ (mod 1).
    shift (0, 0): coincidence (AA-like) sites; (½, ½): anti-coincidence (AB-like) sites, the
    moiré cell centres. Solves (R(−α₁) − R(−α₀)) r = a (s + u) + R(−α₁)t₁ − R(−α₀)t₀ for integer u.
    """
    R0, R1 = _rot(-layer_angles_deg[0]), _rot(-layer_angles_deg[1])
    M = R1 - R0
    if abs(np.linalg.det(M)) < 1e-12:
        raise ValueError("layers are not twisted: no moiré sites")
    t0, t1 = np.asarray(origins[0], float)[:2], np.asarray(origins[1], float)[:2]
    c = R1 @ t1 - R0 @ t0
    Minv = np.linalg.inv(M)
    # every integer u whose site can fall in the cell: bound by |M r| <= |M| * L * sqrt(2)
    umax = int(np.ceil(np.linalg.norm(M, 2) * L * np.sqrt(2) / a + np.abs(c).max() / a)) + 1
    us = np.arange(-umax, umax + 1)
    U = np.stack(np.meshgrid(us, us), -1).reshape(-1, 2).astype(float)
    r = ((a * (U + np.asarray(shift)) + c) @ Minv.T) % L
    r = np.where(r > L - 1e-6 * a, r - L, r)   # float round-off: L - eps is the site at 0
    # deduplicate (periodic images coincide after wrapping)
    out: list[np.ndarray] = []
    for p in r:
        if not any(np.hypot(*(((p - q) + L / 2) % L - L / 2)) < 1e-3 * a for q in out):
            out.append(p)
    return np.array(out).reshape(-1, 2)


def field_maxima(f, x, y, *, rel_height: float = 0.5, smooth_px: float = 1.0) -> np.ndarray:
    """Local maxima (k, 2; Å) of a periodic scalar map f[y, x] above rel_height x max, after periodic
    Gaussian smoothing (e.g. |ε_xy| on the interface: the dislocation-network nodes)."""
    f = ndimage.gaussian_filter(np.asarray(f, float), smooth_px, mode="wrap") if smooth_px > 0 else np.asarray(f, float)
    tol = 1e-9 * np.abs(f).max()           # equal up to round-off: symmetric plateaus stay whole
    peak = (f >= ndimage.maximum_filter(f, size=3, mode="wrap") - tol) & (f >= rel_height * f.max()) & (f > f.min())
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x[1] - x[0], y[1] - y[0]
    ny, nx = f.shape
    # a peak between grid points is a plateau of equal maxima: label plateaus (joined across the periodic
    # seams), take each one's centre, then refine with a parabola along x and y through periodic neighbours
    lab, cnt = ndimage.label(peak, structure=np.ones((3, 3), int))
    for i in range(ny):
        for j in range(nx):
            if lab[i, j]:
                for a, b in (((i + 1) % ny, j), (i, (j + 1) % nx), ((i + 1) % ny, (j + 1) % nx), ((i + 1) % ny, (j - 1) % nx)):
                    if lab[a, b] and lab[a, b] != lab[i, j]:
                        lab[lab == lab[a, b]] = lab[i, j]
    out = []
    for k in np.unique(lab[lab > 0]):
        iy, ix = np.nonzero(lab == k)
        # periodic mean of the plateau indices
        cj = ix[0] + np.mean((ix - ix[0] + nx / 2) % nx - nx / 2)
        ci = iy[0] + np.mean((iy - iy[0] + ny / 2) % ny - ny / 2)
        j0, i0 = int(round(cj)) % nx, int(round(ci)) % ny
        if np.isclose(cj % nx, j0) or len(ix) == 1:
            cj = j0 + _parabolic(np.array([f[i0, (j0 - 1) % nx], f[i0, j0], f[i0, (j0 + 1) % nx]]), 1)
        if np.isclose(ci % ny, i0) or len(iy) == 1:
            ci = i0 + _parabolic(np.array([f[(i0 - 1) % ny, j0], f[i0, j0], f[(i0 + 1) % ny, j0]]), 1)
        out.append([(x[0] + cj * dx) % (nx * dx), (y[0] + ci * dy) % (ny * dy)])
    out = np.array(out, float).reshape(-1, 2)
    return np.where(out > np.array([nx * dx, ny * dy]) - 1e-9, 0.0, out)
