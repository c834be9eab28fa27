"""Differential phase contrast: centre of mass (COM) of diffraction patterns <-> projected electric field.

Phase-object approximation: the exit wave is ψ = ψ₀ exp(iσV_proj), σ the relativistic
interaction parameter and V_proj = ∫V dz (V·Å). The beam's mean transverse wave vector
is ⟨k⊥⟩ = ⟨∇(σV_proj)⟩/2π (1/Å), so the deflection angle (COM in angle units) is

    β = λ⟨k⊥⟩ = (σλ/2π) ⟨∇V_proj⟩ = −(σλ/2π) ⟨E_proj⟩,   E_proj = ∫E dz = −∇V_proj  (V)

with ⟨·⟩ the average over the probe intensity. Electrons are deflected toward positive
potential, i.e. against E: COM ∝ −E. Wave vectors use the crystallographic convention
k = 1/λ (numpy's FFT, exp(−2πik·r) forward). Constants: CODATA via scipy.constants.
At 300 kV: λ = 0.019687 Å, σ = 6.526e-4 rad/(V·Å), so 1 mrad ↔ 489 V of projected field.

Component layout: a vector map is an array (2, ny, nx) with [0] = x and [1] = y,
grid indexed [y, x] (see twistox.analysis.topology).
"""

from __future__ import annotations

import numpy as np
from scipy import constants as C
from scipy import ndimage


def wavelength(energy_eV: float) -> float:
    """Relativistic electron wavelength (Å) at acceleration voltage energy_eV (eV)."""
    if not energy_eV > 0:
        raise ValueError(f"beam energy must be > 0 eV, got {energy_eV}")
    E = energy_eV * C.e
    p = np.sqrt(2.0 * C.m_e * E * (1.0 + E / (2.0 * C.m_e * C.c**2)))
    return float(C.h / p * 1e10)


def interaction_parameter(energy_eV: float) -> float:
    """σ = 2π m e λ / h² (rad / (V·Å)), m = γ m₀ the relativistic electron mass."""
    lam_m = wavelength(energy_eV) * 1e-10
    m = C.m_e * (1.0 + energy_eV * C.e / (C.m_e * C.c**2))
    return float(2.0 * np.pi * m * C.e * lam_m / C.h**2 * 1e-10)


def mrad_per_volt(energy_eV: float) -> float:
    """Deflection (mrad) per volt of projected field: σλ/2π × 1e3."""
    return interaction_parameter(energy_eV) * wavelength(energy_eV) / (2.0 * np.pi) * 1e3


def com_to_projected_field(com_mrad: np.ndarray, energy_eV: float) -> np.ndarray:
    """COM deflection (mrad, any shape, components leading) -> E_proj = ∫E dz (V). E_proj = −β / (σλ/2π)."""
    return -np.asarray(com_mrad, float) / mrad_per_volt(energy_eV)


def projected_field_to_com(e_proj_V: np.ndarray, energy_eV: float, blur_sigma_px: float = 0.0,
                           periodic: bool = True) -> np.ndarray:
    """Expected COM (mrad) of a projected field (2, ny, nx) in V; optional Gaussian blur (grid points)
    standing in for the probe intensity that averages the field."""
    e = np.asarray(e_proj_V, float)
    if blur_sigma_px > 0:
        mode = "wrap" if periodic else "nearest"
        e = np.stack([ndimage.gaussian_filter(c, blur_sigma_px, mode=mode) for c in e])
    return -e * mrad_per_volt(energy_eV)


def com_from_4dstem(data, k_sampling_mrad: float | tuple[float, float], center: tuple[float, float] | None = None,
                    device: str = "cpu", chunk_rows: int = 16, mode: str = "bright_field", mask_factor: float = 1.5,
                    disc: str = "mean", radius_mrad: float | None = None) -> np.ndarray:
    """COM (mrad) of every diffraction pattern of a 4D-STEM dataset (scan_y, scan_x, k_y, k_x).

    ⟨k⟩ = Σ k I(k) / Σ I(k), k measured from ``center`` (pixel (k_y, k_x); default the detector
    centre ((n−1)/2)), one pixel = k_sampling_mrad (scalar or (y, x)). The math is
    :func:`twistox.stem.com.centre_of_mass`, shared with the simulated 4D-STEM: ``mode``
    'bright_field' (default) keeps only pixels within ``mask_factor`` × R of the bright-field disc
    (R = ``radius_mrad``, e.g. the probe semi-angle, or the half-maximum radius measured on the mean
    pattern when None; disc centred on the mean pattern, or per pattern with ``disc='per_pattern'``);
    'whole' uses every pixel of the k-symmetric window. Defaults = the analysis.experiment schema
    (com_mode, com_mask_factor, com_disc). Returns (2, scan_y, scan_x) with [0] = x. Runs in torch on
    ``device``, chunked over scan rows (two passes for the mean pattern), so the data need not fit.
    """
    import torch

    from twistox.stem.com import centre_of_mass

    data = np.asarray(data) if not hasattr(data, "shape") else data
    if len(data.shape) != 4:
        raise ValueError(f"4D-STEM data must be 4D (scan_y, scan_x, k_y, k_x); got shape {tuple(data.shape)}")
    sy, sx, ky, kx = data.shape
    dky, dkx = (k_sampling_mrad, k_sampling_mrad) if np.isscalar(k_sampling_mrad) else k_sampling_mrad
    cy, cx = ((ky - 1) / 2.0, (kx - 1) / 2.0) if center is None else center
    kyv, kxv = (np.arange(ky) - cy) * dky, (np.arange(kx) - cx) * dkx

    def rows(r0):
        block = np.array(data[r0:r0 + chunk_rows], dtype=np.float64)
        total = block.sum(axis=(-2, -1))
        if not (np.isfinite(total).all() and (total > 0).all()):
            raise ValueError("4D-STEM data: a diffraction pattern has zero, negative or non-finite total intensity")
        return block

    mean = None
    if mode == "bright_field":
        mean = np.zeros((ky, kx))
        for r0 in range(0, sy, chunk_rows):
            mean += rows(r0).sum(axis=(0, 1))
        mean /= sy * sx
    out = np.empty((2, sy, sx))
    for r0 in range(0, sy, chunk_rows):
        block = torch.as_tensor(rows(r0), device=device)
        mx, my, _ = centre_of_mass(block, kyv, kxv, mode=mode, mask_factor=mask_factor, disc=disc,
                                   radius=radius_mrad, mean_pattern=mean)
        out[0, r0:r0 + chunk_rows] = mx.cpu().numpy()
        out[1, r0:r0 + chunk_rows] = my.cpu().numpy()
    return out


def rotate_vectors(v: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate a vector map (2, ...) counter-clockwise by angle_deg (scan-detector rotation)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.stack([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def remove_background(v: np.ndarray, method: str = "mean") -> np.ndarray:
    """Remove the descan / tilt background from a COM map (2, ny, nx): 'none', 'mean' or 'plane' (least squares)."""
    v = np.asarray(v, float)
    if method == "none":
        return v
    if method == "mean":
        return v - v.reshape(2, -1).mean(axis=1)[:, None, None]
    if method == "plane":
        ny, nx = v.shape[1:]
        yy, xx = np.mgrid[0:ny, 0:nx]
        A = np.stack([np.ones(xx.size), xx.ravel(), yy.ravel()], axis=1)
        out = np.empty_like(v)
        for c in range(2):
            coef, *_ = np.linalg.lstsq(A, v[c].ravel(), rcond=None)
            out[c] = v[c] - (A @ coef).reshape(ny, nx)
        return out
    raise ValueError(f"background method {method!r} not allowed; allowed: none, mean, plane")
