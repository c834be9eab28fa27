"""Geometric phase analysis (GPA; Hÿtch, Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998)).

Conventions (as everywhere in twistox): ``image[y, x]`` with y = row × sampling and
x = column × sampling (Å); g-vectors (gx, gy) in 1/Å; rotations counter-clockwise positive
in (x, y). A Bragg filter around g gives H_g(r); its geometric phase
P_g(r) = arg H_g(r) − 2π g·r measures the local reciprocal vector g + ∇P_g / 2π.
With the two reference g-vectors as the rows of G, the local lattice has G_loc = G F⁻¹,
so the deformation gradient relative to the reference lattice is F = G_loc⁻¹ G. The polar
decomposition F = R U gives the rotation angle (exact, not linearised) and the strain
ε = U − I (tensor shear ε_xy), the same definitions as strain.zarr.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def _sampling2(sampling) -> tuple[float, float]:
    """(sy, sx) in Å from a scalar or a pair."""
    s = np.broadcast_to(np.asarray(sampling, float), (2,))
    if not np.all(s > 0):
        raise ValueError(f"sampling must be > 0 (Å per pixel); got {sampling}")
    return float(s[0]), float(s[1])


def check_image(image, name: str = "image") -> np.ndarray:
    """2D finite, non-constant float image [y, x] or a ValueError saying what is wrong."""
    a = np.asarray(image, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2D array [y, x], got shape {a.shape}")
    if min(a.shape) < 16:
        raise ValueError(f"{name}: {a.shape} is too small; need at least 16 x 16 pixels")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: {int((~np.isfinite(a)).sum())} non-finite pixels")
    if np.ptp(a) == 0:
        raise ValueError(f"{name}: constant image, nothing to analyse")
    return a


def frequencies(shape: tuple[int, int], sampling) -> tuple[np.ndarray, np.ndarray]:
    """FFT frequencies (ky[:, None], kx[None, :]) in 1/Å of an image [y, x]."""
    sy, sx = _sampling2(sampling)
    return np.fft.fftfreq(shape[0], sy)[:, None], np.fft.fftfreq(shape[1], sx)[None, :]


def hann2d(shape: tuple[int, int]) -> np.ndarray:
    return np.hanning(shape[0])[:, None] * np.hanning(shape[1])[None, :]


def find_peaks(image: np.ndarray, sampling, n: int = 8, k_min: float = 0.1, k_max: float | None = None,
               exclusion: float = 3.0) -> np.ndarray:
    """Strongest Bragg peaks (gx, gy) in 1/Å of a Hann-windowed power spectrum, one of each ±g pair.

    k_min, k_max: annulus searched (1/Å); exclusion: suppression radius around a found peak (FFT pixels).
    Positions are refined to sub-pixel precision with a parabola through the log-power.
    """
    img = check_image(image)
    sy, sx = _sampling2(sampling)
    ny, nx = img.shape
    P = np.abs(np.fft.fft2((img - img.mean()) * hann2d(img.shape))) ** 2
    ky, kx = frequencies(img.shape, sampling)
    k = np.hypot(ky, kx)
    mask = (k >= k_min) & (k <= (k_max if k_max is not None else np.inf))
    # keep one half-plane: the spectrum of a real image is symmetric
    mask &= (ky > 0) | ((ky == 0) & (kx > 0))
    work = np.where(mask, P, 0.0)
    out = []
    iy_all, ix_all = np.indices(P.shape)
    for _ in range(n):
        i = int(np.argmax(work))
        if work.flat[i] <= 0:
            break
        iy, ix = np.unravel_index(i, P.shape)
        dy, dx = _parabolic(np.log(P + 1e-300), iy, ix)
        out.append(((ix + dx) if ix + dx < nx / 2 else (ix + dx - nx), (iy + dy) if iy + dy < ny / 2 else (iy + dy - ny)))
        # suppress the neighbourhood of the peak and its mirror (periodic distances)
        for cy, cx in ((iy, ix), ((-iy) % ny, (-ix) % nx)):
            ddy = (iy_all - cy + ny // 2) % ny - ny // 2
            ddx = (ix_all - cx + nx // 2) % nx - nx // 2
            work[np.hypot(ddy, ddx) <= exclusion] = 0.0
    g = np.array(out, float).reshape(-1, 2)
    return np.column_stack([g[:, 0] / (nx * sx), g[:, 1] / (ny * sy)])


def _parabolic(L: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    ny, nx = L.shape
    c = L[iy, ix]
    def off(m, p):
        d = m - 2 * c + p
        return 0.0 if d >= 0 else float(np.clip(0.5 * (m - p) / d, -0.5, 0.5))
    return off(L[(iy - 1) % ny, ix], L[(iy + 1) % ny, ix]), off(L[iy, (ix - 1) % nx], L[iy, (ix + 1) % nx])


def auto_g_vectors(image: np.ndarray, sampling, k_min: float = 0.1) -> np.ndarray:
    """The strongest Bragg peak and the strongest one not (anti)parallel to it (> 20° apart), (2, 2) 1/Å."""
    peaks = find_peaks(image, sampling, n=12, k_min=k_min)
    if len(peaks) < 2:
        raise ValueError("gpa: fewer than two Bragg peaks found; pass g_vectors explicitly")
    g1 = peaks[0]
    for g in peaks[1:]:
        c = abs(g @ g1) / (np.linalg.norm(g) * np.linalg.norm(g1))
        if c < np.cos(np.radians(20.0)):
            return np.array([g1, g])
    raise ValueError("gpa: no second Bragg peak at > 20° from the strongest; pass g_vectors explicitly")


def bragg_filter(image: np.ndarray, sampling, g, sigma_k: float) -> np.ndarray:
    """Complex image H_g(r): the spectrum times a Gaussian mask of width sigma_k (1/Å) centred on g."""
    ky, kx = frequencies(image.shape, sampling)
    m = np.exp(-((kx - g[0]) ** 2 + (ky - g[1]) ** 2) / (2 * sigma_k**2))
    return np.fft.ifft2(np.fft.fft2(image) * m)


def geometric_phase(H: np.ndarray, sampling, g) -> np.ndarray:
    """Complex unit field exp(i P_g) with P_g = arg H − 2π g·r (r from the pixel centres, Å)."""
    sy, sx = _sampling2(sampling)
    y = np.arange(H.shape[0])[:, None] * sy
    x = np.arange(H.shape[1])[None, :] * sx
    z = H * np.exp(-2j * np.pi * (g[0] * x + g[1] * y))
    return z / np.maximum(np.abs(z), 1e-300)


def phase_gradient(z: np.ndarray, sampling) -> tuple[np.ndarray, np.ndarray]:
    """(∂P/∂x, ∂P/∂y) in rad/Å of a unit complex field exp(iP): wrap-safe central differences."""
    sy, sx = _sampling2(sampling)
    gx = np.angle(np.roll(z, -1, 1) * np.conj(np.roll(z, 1, 1))) / (2 * sx)
    gy = np.angle(np.roll(z, -1, 0) * np.conj(np.roll(z, 1, 0))) / (2 * sy)
    # the image is not periodic: one-sided differences on the border
    gx[:, 0] = np.angle(z[:, 1] * np.conj(z[:, 0])) / sx
    gx[:, -1] = np.angle(z[:, -1] * np.conj(z[:, -2])) / sx
    gy[0] = np.angle(z[1] * np.conj(z[0])) / sy
    gy[-1] = np.angle(z[-1] * np.conj(z[-2])) / sy
    return gx, gy


def deformation_from_phases(G: np.ndarray, grads: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """F (..., 2, 2) from the reference g-vectors G (rows, 1/Å) and their phase gradients (rad/Å)."""
    Gloc = np.empty(grads[0][0].shape + (2, 2))
    for i, (gx, gy) in enumerate(grads):
        Gloc[..., i, 0] = G[i, 0] + gx / (2 * np.pi)
        Gloc[..., i, 1] = G[i, 1] + gy / (2 * np.pi)
    return np.linalg.solve(Gloc, np.broadcast_to(G, Gloc.shape))


def polar_strain(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """exx, eyy, exy (U − I, tensor shear) and the rotation angle (rad, CCW) of F = R U (2D, exact)."""
    rot = np.arctan2(F[..., 1, 0] - F[..., 0, 1], F[..., 0, 0] + F[..., 1, 1])
    c, s = np.cos(rot), np.sin(rot)
    # U = R^T F
    u00 = c * F[..., 0, 0] + s * F[..., 1, 0]
    u01 = c * F[..., 0, 1] + s * F[..., 1, 1]
    u10 = -s * F[..., 0, 0] + c * F[..., 1, 0]
    u11 = -s * F[..., 0, 1] + c * F[..., 1, 1]
    return u00 - 1.0, u11 - 1.0, 0.5 * (u01 + u10), rot


def gpa(image, sampling, g_vectors=None, sigma: float | None = None) -> xr.Dataset:
    """Strain and rotation maps of a lattice image by geometric phase analysis.

    image: [y, x] array (y = row × sampling); sampling: Å per pixel (scalar or (sy, sx));
    g_vectors: two non-collinear reference reflections ((gx, gy), 1/Å) — the reference lattice
    the strain is measured against; default: the two strongest non-collinear Bragg peaks
    (sub-pixel refined). sigma: real-space resolution (Å) of the Gaussian Bragg mask,
    σ_k = 1/(2π σ); default σ_k = |g_min| / 6 (≈ one lattice spacing of resolution).
    Returns a Dataset with exx, eyy, exy (U − I, tensor shear; 1), rotation (rad, CCW in (x, y))
    and amplitude_0/1 (Bragg-filtered amplitudes) on (y, x) in Å; attrs g_vectors, sigma.
    """
    img = check_image(image)
    sy, sx = _sampling2(sampling)
    if g_vectors is None:
        G = auto_g_vectors(img, (sy, sx))
    else:
        G = np.asarray(g_vectors, float)
        if G.shape != (2, 2):
            raise ValueError(f"gpa: g_vectors must be two (gx, gy) pairs in 1/Å; got shape {G.shape}")
        if abs(np.linalg.det(G)) < 1e-6 * np.linalg.norm(G[0]) * np.linalg.norm(G[1]) + 1e-300:
            raise ValueError("gpa: g_vectors are collinear; give two non-parallel reflections")
    gmin = float(np.min(np.linalg.norm(G, axis=1)))
    kmax = 0.5 / max(sy, sx)
    if np.max(np.abs(G)) >= kmax:
        raise ValueError(f"gpa: g_vectors {G.tolist()} beyond the Nyquist frequency {kmax:.3f} 1/Å")
    sigma_k = gmin / 6.0 if sigma is None else 1.0 / (2 * np.pi * float(sigma))
    if sigma is not None and float(sigma) <= 0:
        raise ValueError(f"gpa: sigma must be > 0 Å; got {sigma}")
    img = img - img.mean()
    grads, amps = [], []
    for g in G:
        H = bragg_filter(img, (sy, sx), g, sigma_k)
        amps.append(np.abs(H))
        grads.append(phase_gradient(geometric_phase(H, (sy, sx), g), (sy, sx)))
    F = deformation_from_phases(G, grads)
    exx, eyy, exy, rot = polar_strain(F)
    y = np.arange(img.shape[0]) * sy
    x = np.arange(img.shape[1]) * sx
    dims = ("y", "x")
    strain_attrs = {"units": "1", "description": "U − I of F = R U relative to the reference lattice"}
    ds = xr.Dataset(
        {"exx": (dims, exx, strain_attrs), "eyy": (dims, eyy, strain_attrs),
         "exy": (dims, exy, {**strain_attrs, "description": strain_attrs["description"] + "; tensor shear (engineering = 2x)"}),
         "rotation": (dims, rot, {"units": "rad", "description": "lattice rotation relative to the reference, CCW in (x, y)"}),
         "amplitude_0": (dims, amps[0], {"units": "a.u."}), "amplitude_1": (dims, amps[1], {"units": "a.u."})},
        coords={"y": ("y", y, {"units": "Å"}), "x": ("x", x, {"units": "Å"})},
    )
    ds.attrs.update(g_vectors=G.tolist(), g_units="1/Å", sigma=float(1.0 / (2 * np.pi * sigma_k)), sigma_units="Å",
                    sigma_k=float(sigma_k), sampling=[sy, sx],
                    convention="image[y, x], y = row × sampling; rotation CCW positive in (x, y)")
    return ds


def rotate_strain(exx, eyy, exy, angle: float):
    """Strain tensor components in a frame whose x axis is at ``angle`` (rad, CCW) from the image x."""
    c, s = np.cos(angle), np.sin(angle)
    xx = c * c * exx + 2 * c * s * exy + s * s * eyy
    yy = s * s * exx - 2 * c * s * exy + c * c * eyy
    xy = -c * s * exx + (c * c - s * s) * exy + c * s * eyy
    return xx, yy, xy
