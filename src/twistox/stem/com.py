"""Centre of mass (COM) of diffraction patterns: the bright-field disc only, or the whole pattern.

One implementation for the simulated 4D-STEM (:mod:`twistox.stem.fourd`) and for measured 4D
data (:func:`twistox.analysis.dpc.com_from_4dstem`).

Conventions: patterns are arrays (..., n_ky, n_kx), i.e. [ky, kx] like images [y, x]; ``ky``,
``kx`` are the 1-D pixel coordinates (any unit, mrad in twistox) measured from the optical axis,
so the COM is absolute: ⟨k⟩ = Σ k I(k) / Σ I(k) over the selected pixels. Patterns may be NumPy
arrays or torch tensors (the GPU path of ``com_from_4dstem``); results come back in the same kind.

Why the disc: at tilted columns the Bragg discs outside the bright-field (BF) disc change their
intensities with the local crystal orientation and thickness, and a whole-pattern COM picks that
up as a spurious deflection; the projected-field signal of a small probe is carried by the
intensity redistribution within (and at the overlaps of) the BF disc.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("bright_field", "whole")
DISCS = ("mean", "per_pattern")


def symmetric_window(k: np.ndarray) -> np.ndarray:
    """Pixels of a 1-D k axis that have a −k partner.

    An even-sized detector has one unpaired row/column at −k_max; counting it biases the COM
    (measured with abTEM's center_of_mass on 256²: a uniform 0.006 mrad offset over a
    centrosymmetric cell)."""
    k = np.asarray(k, float)
    kmax = min(k.max(), -k.min())
    return np.abs(k) <= kmax + 1e-9 * max(1.0, abs(kmax))


@dataclass(frozen=True)
class Disc:
    """Bright-field disc: centre (cy, cx) and radius, in the units of the k coordinates."""

    cy: float
    cx: float
    radius: float


def find_disc(pattern: np.ndarray, ky: np.ndarray, kx: np.ndarray, threshold: float = 0.5) -> Disc:
    """BF disc of one (mean) pattern (n_ky, n_kx): the connected region above ``threshold`` × max
    that holds the maximum; centre = its intensity-weighted centroid, radius = √(area/π)
    (half-maximum edge, ± half a pixel)."""
    from scipy import ndimage

    p = np.asarray(pattern, float)
    if p.ndim != 2 or not np.isfinite(p).all() or p.max() <= 0:
        raise ValueError("bright-field disc: the mean pattern must be 2-D, finite and have positive intensity")
    lab, _ = ndimage.label(p >= threshold * p.max())
    region = lab == lab[np.unravel_index(np.argmax(p), p.shape)]
    iy, ix = np.nonzero(region)
    dky = abs(float(ky[1] - ky[0])) if len(ky) > 1 else 1.0
    dkx = abs(float(kx[1] - kx[0])) if len(kx) > 1 else 1.0
    w = p[iy, ix]  # intensity-weighted centroid: sub-pixel, unlike the region's bare centroid
    return Disc(float(np.sum(w * np.asarray(ky)[iy]) / w.sum()), float(np.sum(w * np.asarray(kx)[ix]) / w.sum()),
                float(np.sqrt(len(iy) * dky * dkx / np.pi)))


def _like(a, ref):
    """``a`` (NumPy) as the array kind of ``ref`` (NumPy or a torch tensor on its device)."""
    if isinstance(ref, np.ndarray):
        return np.asarray(a, dtype=ref.dtype if np.issubdtype(ref.dtype, np.floating) else float)
    import torch

    return torch.as_tensor(np.asarray(a), dtype=ref.dtype, device=ref.device)


def _ratio(num, den):
    if isinstance(den, np.ndarray):
        bad = ~(den > 0)
    else:
        bad = ~(den > 0).cpu().numpy()
    if bool(np.any(bad)):
        raise ValueError("centre of mass: a pattern has zero, negative or non-finite intensity in the selected pixels")
    return num / den


def whole_com(patterns, ky: np.ndarray, kx: np.ndarray):
    """COM (cx, cy) over the whole pattern, restricted to the k-symmetric window."""
    window = symmetric_window(ky)[:, None] & symmetric_window(kx)[None, :]
    KY, KX = np.meshgrid(np.asarray(ky, float), np.asarray(kx, float), indexing="ij")
    pm = patterns * _like(window, patterns)
    total = pm.sum(axis=(-2, -1))
    return (_ratio((pm * _like(KX, patterns)).sum(axis=(-2, -1)), total),
            _ratio((pm * _like(KY, patterns)).sum(axis=(-2, -1)), total))


def masked_com(patterns, ky: np.ndarray, kx: np.ndarray, cy, cx, radius: float):
    """COM (cx, cy) of the pixels within ``radius`` of the centre (cy, cx) (scalars, or arrays with
    the patterns' leading shape: one centre per pattern), inside the k-symmetric window."""
    window = symmetric_window(ky)[:, None] & symmetric_window(kx)[None, :]
    KY, KX = np.meshgrid(np.asarray(ky, float), np.asarray(kx, float), indexing="ij")
    KYt, KXt, W = _like(KY, patterns), _like(KX, patterns), _like(window, patterns)
    if np.isscalar(cy) and np.isscalar(cx):
        m = _like(((KY - cy) ** 2 + (KX - cx) ** 2 <= radius**2) & window, patterns)
    else:
        cyt, cxt = cy[..., None, None], cx[..., None, None]
        m = (((KYt - cyt) ** 2 + (KXt - cxt) ** 2) <= radius**2) * W
    pm = patterns * m
    total = pm.sum(axis=(-2, -1))
    return _ratio((pm * KXt).sum(axis=(-2, -1)), total), _ratio((pm * KYt).sum(axis=(-2, -1)), total)


def check_mask(disc: Disc, radius: float, ky: np.ndarray, kx: np.ndarray, what: str = "com_mask_factor") -> None:
    """The BF mask must lie on the detector (inside the k-symmetric window)."""
    ky_s, kx_s = np.asarray(ky)[symmetric_window(ky)], np.asarray(kx)[symmetric_window(kx)]
    reach = min(ky_s.max() - disc.cy, disc.cy - ky_s.min(), kx_s.max() - disc.cx, disc.cx - kx_s.min())
    if radius > reach + 1e-9:
        raise ValueError(f"{what}: the bright-field mask (radius {radius:.3g}) does not fit on the detector "
                         f"(at most {reach:.3g} around the disc centre); lower the mask factor or use com_mode: whole")


def centre_of_mass(patterns, ky: np.ndarray, kx: np.ndarray, *, mode: str, mask_factor: float, disc: str,
                   radius: float | None = None, mean_pattern: np.ndarray | None = None, iterations: int = 3):
    """COM (cx, cy) of patterns (..., n_ky, n_kx) and the BF disc used (None for ``mode='whole'``).

    ``mode='bright_field'``: only pixels within ``mask_factor`` × R of the disc centre count, R =
    ``radius`` (e.g. the probe semi-angle) or, when None, the measured disc radius. The disc is
    found on ``mean_pattern`` (default: the mean of ``patterns``); ``disc='mean'`` centres one mask
    there, ``disc='per_pattern'`` re-centres it on each pattern's own masked COM ``iterations``
    times (follows a disc that wanders, e.g. with descan). ``mode='whole'``: all pixels.
    """
    if mode not in MODES:
        raise ValueError(f"com_mode: {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if mode == "whole":
        return (*whole_com(patterns, ky, kx), None)
    if disc not in DISCS:
        raise ValueError(f"com_disc: {disc!r} is not allowed; allowed: {', '.join(DISCS)}")
    if not mask_factor > 0:
        raise ValueError(f"com_mask_factor: {mask_factor} must be > 0")
    if mean_pattern is None:
        p = patterns.reshape((-1,) + tuple(patterns.shape[-2:])).mean(axis=0)
        mean_pattern = p if isinstance(p, np.ndarray) else p.cpu().numpy()
    d = find_disc(mean_pattern, ky, kx)
    R = mask_factor * (d.radius if radius is None else float(radius))
    check_mask(d, R, ky, kx)
    if disc == "mean":
        cx, cy = masked_com(patterns, ky, kx, d.cy, d.cx, R)
    else:
        lead = tuple(patterns.shape[:-2])
        cx, cy = _like(np.full(lead, d.cx), patterns), _like(np.full(lead, d.cy), patterns)
        for _ in range(max(1, int(iterations))):
            cx, cy = masked_com(patterns, ky, kx, cy, cx, R)
    return cx, cy, d
