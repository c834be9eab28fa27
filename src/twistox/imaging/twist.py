"""Twist angle of a bilayer from one plan-view image: the two layers' lattice reflections, refined.

1. Hann-windowed power spectrum; the {100} reflections (|g| ≈ 1/a) are searched in an annulus and
   split into two square lattices by their angle modulo 90°.
2. For each lattice, every reflection (h, k) with |g| ≤ g_max that is not masked by the other
   lattice is refined by maximising the windowed discrete-time Fourier transform |Σ w I e^{-2πi g·r}|²
   on a zoomed grid, with a 2D parabola through the log-power (sub-pixel, typically 1/50 pixel).
3. Each lattice's reciprocal matrix M (g = M (h, k)ᵀ) is fitted by weighted least squares; the twist
   is the rotation angle of N = M_t M_b⁻¹, insensitive to a distortion common to both lattices
   (scan drift, calibration). Square lattices: θ ≡ θ + 90°, reported in (−45°, 45°].
Uncertainty: per-reflection position errors from the fit residuals (at least a noise-based
floor from the peak's signal-to-background ratio), propagated through the least squares, plus a
systematic floor of SYSTEMATIC_PIXEL of an FFT pixel per lattice, times 2 (≈ 95 % coverage). Conventions: image[y, x], y = row × sampling (Å); angles CCW from +x in (x, y).
"""

from __future__ import annotations

import numpy as np

from twistox.imaging.gpa import _sampling2, check_image, hann2d


# Systematic floor per lattice orientation, as a fraction of one FFT pixel at |g| = 1/a: leakage of
# the other lattice's reflections through the Hann window's side lobes, measured up to ~0.001 pixel
# on synthetic bilayers (tests/test_imaging_twist.py); 0.005 keeps the quoted 2σ covering it.
SYSTEMATIC_PIXEL = 0.005


def _dtft(img: np.ndarray, sy: float, sx: float, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """|Σ img e^{-2πi (kx x + ky y)}|² on the grid ky × kx (1/Å), by two matrix products."""
    y = np.arange(img.shape[0]) * sy
    x = np.arange(img.shape[1]) * sx
    Ey = np.exp(-2j * np.pi * np.outer(ky, y))
    Ex = np.exp(-2j * np.pi * np.outer(x, kx))
    return np.abs(Ey @ img @ Ex) ** 2


def refine_peak(img: np.ndarray, sy: float, sx: float, g0, half_width: float, steps: int = 9,
                rounds: int = 2) -> tuple[np.ndarray, float, float]:
    """Sub-pixel position (gx, gy) of the DTFT maximum near g0 (1/Å), its power and curvature width."""
    g = np.asarray(g0, float)
    hw = half_width
    for _ in range(rounds):
        kx = g[0] + np.linspace(-hw, hw, steps)
        ky = g[1] + np.linspace(-hw, hw, steps)
        P = _dtft(img, sy, sx, kx, ky)
        iy, ix = np.unravel_index(np.argmax(P), P.shape)
        iy, ix = int(np.clip(iy, 1, steps - 2)), int(np.clip(ix, 1, steps - 2))
        L = np.log(P[iy - 1:iy + 2, ix - 1:ix + 2] + 1e-300)
        d = kx[1] - kx[0]
        def off(m, c, p):
            den = m - 2 * c + p
            return 0.0 if den >= 0 else float(np.clip(0.5 * (m - p) / den, -1, 1))
        g = np.array([kx[ix] + d * off(*L[1, :]), ky[iy] + d * off(*L[:, 1])])
        hw = 2 * d
    power = float(_dtft(img, sy, sx, g[:1], g[1:])[0, 0])
    return g, power, d


def _lattice_peaks(P: np.ndarray, kx: np.ndarray, ky: np.ndarray, a: float, rel: float = 0.2):
    """Candidate {100} peaks: local maxima of the power in |k| ∈ [(1−rel)/a, (1+rel)/a], strongest first."""
    from scipy.ndimage import maximum_filter

    k = np.hypot(kx, ky)
    ring = (k > (1 - rel) / a) & (k < (1 + rel) / a) & ((ky > 0) | ((ky == 0) & (kx > 0)))
    loc = (P == maximum_filter(P, size=3, mode="wrap")) & ring
    iy, ix = np.nonzero(loc)
    order = np.argsort(P[iy, ix])[::-1]
    return np.column_stack([np.broadcast_to(kx, P.shape)[iy, ix], np.broadcast_to(ky, P.shape)[iy, ix]])[order], P[iy, ix][order]


def _reduce90(angle_deg):
    return (np.asarray(angle_deg) + 45.0) % 90.0 - 45.0


def alias_free_scan_step(a: float, g_max: float | None = None) -> float:
    """Largest probe step (Å) of a scanned image whose aliases of every reflection up to {220} (|G| = 2√2/a,
    the strong HAADF reflections of a perovskite in [001]) stay outside |g| <= g_max (1/Å; default 2.3/a, the
    range :func:`twist_angle` uses): an alias G − m/s (m ≠ 0 integer) has |g| >= 1/s − |G|, so 1/s > 2√2/a + g_max.

    At a = 3.88 Å: 0.76 Å. A 1.0 Å scan puts the {220} aliases at |g| ≈ 1.07/a, on the {100} ring (measured on the
    network demo's plan view: they were the strongest peaks there). Interpolating the image afterwards does not
    remove them: they are in the scanned data."""
    g = 2.3 / a if g_max is None else float(g_max)
    return 1.0 / (2.0 * np.sqrt(2.0) / a + g)


def twist_angle(image, sampling, a: float = 3.905, g_max: float | None = None, layer_angles_deg=None,
                min_snr: float = 20.0, scan_step: float | None = None) -> dict:
    """Twist angle between the two square lattices of a plan-view bilayer image.

    image: [y, x] (y = row × sampling); sampling: Å per pixel; a: lattice constant (Å; only a search
    guide, the fitted lattice parameter is returned); g_max: largest |g| used (1/Å; default 2.3/a, below
    Nyquist); layer_angles_deg: optional known (bottom, top) orientations used only to label which
    lattice is the top one (default: the top lattice is the one rotated CCW, θ > 0). scan_step: the probe
    step (Å) the image was scanned with when it was interpolated to ``sampling`` afterwards; a step above
    :func:`alias_free_scan_step` raises ValueError (aliased reflections would be read as lattices).
    Returns a dict: theta_deg (top relative to bottom, CCW, in (−45, 45]), theta_uncertainty_deg (≈ 2σ),
    lattice_angles_deg (bottom, top; CCW from +x, mod 90), lattice_parameters (Å), n_reflections,
    g_vectors (list per lattice of (h, k, gx, gy)), fft_pixel_deg (angular width of one FFT pixel at 1/a).
    """
    img = check_image(image)
    sy, sx = _sampling2(sampling)
    if not a > 0:
        raise ValueError(f"twist_angle: a must be > 0 Å; got {a}")
    ny, nx = img.shape
    ext = min(ny * sy, nx * sx)
    nyq = 0.5 / max(sy, sx)
    if 1.2 / a >= nyq:
        raise ValueError(f"twist_angle: sampling {sampling} Å does not resolve the 1/a = {1 / a:.3f} 1/Å reflections")
    g_max = min(g_max if g_max is not None else 2.3 / a, 0.9 * nyq)
    s_max = alias_free_scan_step(a, g_max)
    if scan_step is not None and scan_step > s_max:
        raise ValueError(f"twist_angle: the image was scanned at {scan_step:g} Å: the {{220}} reflections alias to "
                         f"|g| >= {1.0 / scan_step - 2.0 * np.sqrt(2.0) / a:.3f} 1/Å, inside the |g| <= {g_max:.3f} 1/Å "
                         f"searched here; scan at <= {s_max:.2f} Å")
    w = (img - img.mean()) * hann2d(img.shape)
    F = np.abs(np.fft.fft2(w)) ** 2
    kx = np.fft.fftfreq(nx, sx)[None, :]
    ky = np.fft.fftfreq(ny, sy)[:, None]
    peaks, powers = _lattice_peaks(F, kx, ky, a)
    if len(peaks) < 2:
        raise ValueError("twist_angle: no {100} reflections near |g| = 1/a; check `a` and the sampling")
    ang = np.degrees(np.arctan2(peaks[:, 1], peaks[:, 0]))
    dk = 1.0 / ext
    res_deg = np.degrees(3.0 * dk * a)  # two peaks closer than ~3 pixels are not separated
    a1 = _reduce90(ang[0])
    a2 = None
    bg = float(np.median(F[(np.hypot(kx, ky) > 0.5 / a) & (np.hypot(kx, ky) < g_max)]))
    for t, p in zip(ang[1:], powers[1:]):
        # the second layer: a strong {100} peak (not noise or a side lobe) at another orientation
        if p < max(0.05 * powers[0], min_snr * bg):
            break
        if abs(_reduce90(t - a1)) > res_deg:
            a2 = _reduce90(t)
            break
    if a2 is None:
        raise ValueError(f"twist_angle: only one square lattice found; the twist is below the resolution "
                         f"~{res_deg:.2f}° of a {ext:.0f} Å field of view (or the second layer is invisible)")
    fits = []
    for alpha in (a1, a2):
        other = a2 if alpha == a1 else a1
        rows = []
        R = np.array([[np.cos(np.radians(alpha)), -np.sin(np.radians(alpha))],
                      [np.sin(np.radians(alpha)), np.cos(np.radians(alpha))]]) / a
        Ro = np.array([[np.cos(np.radians(other)), -np.sin(np.radians(other))],
                       [np.sin(np.radians(other)), np.cos(np.radians(other))]]) / a
        nmax = int(np.ceil(g_max * a)) + 1
        others = [Ro @ (i, j) for i in range(-nmax, nmax + 1) for j in range(-nmax, nmax + 1)]
        for h in range(0, nmax + 1):
            for k in range(-nmax, nmax + 1):
                if (h == 0 and k <= 0) or np.hypot(h, k) / a > g_max:
                    continue
                g0 = R @ (h, k)
                # a reflection of the other lattice within 3 pixels biases the peak: skip it
                if min(np.linalg.norm(g0 - go) for go in others) < 3 * dk:
                    continue
                g, p, d = refine_peak(w, sy, sx, g0, 1.5 * dk)
                snr = p / bg
                if snr < min_snr or np.linalg.norm(g - g0) > 1.5 * dk:
                    continue
                rows.append((h, k, g[0], g[1], snr))
        if len(rows) < 2:
            raise ValueError(f"twist_angle: fewer than 2 usable reflections of the lattice at {alpha:.2f}°")
        rows = np.array(rows)
        fits.append(_fit_lattice(rows, dk))
    (Mb, Cb, rb), (Mt, Ct, rt) = fits
    th = _rot_angle(Mt @ np.linalg.inv(Mb))
    alphas = [_rot_angle(Mb), _rot_angle(Mt)]
    # uncertainty: linear propagation of both fits' covariance through θ(M_b, M_t) (numerical Jacobian)
    var = 0.0
    for M, C, which in ((Mb, Cb, 0), (Mt, Ct, 1)):
        J = np.zeros(4)
        for q in range(4):
            dM = np.zeros(4)
            dM[q] = 1e-7 / a
            Mp = M + dM.reshape(2, 2)
            t2 = _rot_angle(Mt @ np.linalg.inv(Mp)) if which == 0 else _rot_angle(Mp @ np.linalg.inv(Mb))
            J[q] = (t2 - th) / (1e-7 / a)
        var += float(J @ C @ J)
    theta = float(np.degrees(th))
    pix_deg = float(np.degrees(dk * a))
    swap = False
    if layer_angles_deg is not None:
        ab, at = (float(v) for v in layer_angles_deg)
        # is lattice 0 the bottom one? compare orientations modulo 90°
        d0 = abs(_reduce90(np.degrees(alphas[0]) - ab)) + abs(_reduce90(np.degrees(alphas[1]) - at))
        d1 = abs(_reduce90(np.degrees(alphas[0]) - at)) + abs(_reduce90(np.degrees(alphas[1]) - ab))
        swap = d1 < d0
    elif _reduce90(theta) < 0:
        swap = True
    if swap:
        theta = -theta
        alphas = alphas[::-1]
        fits = fits[::-1]
    theta = float(_reduce90(theta))
    return {
        "theta_deg": theta,
        "theta_uncertainty_deg": float(2.0 * np.sqrt(np.degrees(np.sqrt(var)) ** 2 + 2 * (SYSTEMATIC_PIXEL * pix_deg) ** 2)),
        "lattice_angles_deg": [float(_reduce90(np.degrees(x))) for x in alphas],
        "lattice_parameters": [float(np.sqrt(2.0 / np.sum(f[0] ** 2))) for f in fits],
        "n_reflections": [int(f[2].shape[0]) for f in fits],
        "g_vectors": [f[2][:, :4].tolist() for f in fits],
        "fft_pixel_deg": float(np.degrees(dk * a)),
        "field_of_view": [ny * sy, nx * sx],
    }


def _rot_angle(M: np.ndarray) -> float:
    """Rotation angle (rad, CCW) of the polar decomposition of a 2x2 matrix."""
    return float(np.arctan2(M[1, 0] - M[0, 1], M[0, 0] + M[1, 1]))


def _fit_lattice(rows: np.ndarray, dk: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares g = M (h, k)ᵀ. Returns M (1/Å), the covariance of M.ravel(), and rows.

    Position error per reflection: σ_j = max(residual scale, floor_j) with the noise floor
    floor_j = 0.5 dk / sqrt(SNR_j) (frequency-estimation scaling: a peak's position is known to a
    fraction of its width that shrinks as 1/sqrt(SNR))."""
    hk = rows[:, :2]
    g = rows[:, 2:4]
    snr = rows[:, 4]
    floor = 0.5 * dk / np.sqrt(snr)
    wts = 1.0 / floor**2
    A = hk
    W = np.diag(wts)
    N = A.T @ W @ A
    Minv = np.linalg.inv(N)
    Mt = Minv @ A.T @ W @ g  # (2, 2): rows = coefficient of h, k; columns gx, gy  -> M = Mt.T
    M = Mt.T
    res = g - hk @ Mt
    dof = max(1, 2 * len(rows) - 4)
    chi2 = float(np.sum(wts[:, None] * res**2)) / dof
    scale = max(1.0, chi2)  # residuals larger than the noise floor inflate the errors
    # covariance of M.ravel() = (M00, M01, M10, M11): rows of M are gx, gy components
    C = np.zeros((4, 4))
    C[0:2, 0:2] = Minv * scale  # gx: coefficients (h, k)
    C[2:4, 2:4] = Minv * scale
    return M, C, rows
