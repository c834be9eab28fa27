"""Regions of a twisted interface for the electronic analysis: in-plane masks and atom groups.

In-plane masks come from the strain stage's interlayer twist map θ_loc(x, y) (strain.zarr
``interlayer_twist``, [y, x], deg; x = column direction, y = row direction, cell-centred grid
(i + ½)L/n). Relaxation untwists the bulk-registry domains (θ_loc minima) and piles the twist up on the
screw-dislocation network: maxima at the nodes, ridges along the lines (walls) joining them. The map is
low-passed to |G| <= ``harmonics``·2π/λ (λ = moiré period) so atomistic noise cannot make islands, and
normalised to t = (θ_f − min)/(max − min) ∈ [0, 1]:

- ``node``:   t >= node_level
- ``line``:   line_level <= t < node_level  (the dislocation lines / walls between the nodes)
- ``domain``: t < line_level                  (less strained, bulk-registry domains)

For the model ψ ∝ cos G₁·r + cos G₂·r of a square network, t = (2 + cos + cos)/4: nodes t = 1, wall
midpoints (saddles) t = ½, domain centres t = 0, so line_level < ½ < node_level keeps the walls connected.
A flat map (rigid stack, peak-to-peak below ``flat_deg``) has no network: every cell is ``domain`` and
the network fractions are NaN.

Atom groups (codes in ``GROUPS``): atoms of the interface planes (strain attrs ``interface_planes``) are
``line``/``node``/``domain`` by the mask value under their (x, y); planes within ``interface_depth`` planes
of the interface (but not on it) are ``interface_near``; the rest are ``bulk_like``.
"""

from __future__ import annotations

import numpy as np

REGIONS = ("domain", "line", "node")          # mask codes 0, 1, 2
GROUPS = ("domain", "line", "node", "interface_near", "bulk_like")


def lowpass_periodic(field: np.ndarray, L: float, moire_period: float, harmonics: float) -> np.ndarray:
    """Keep Fourier components of a periodic map [y, x] with |G| <= harmonics·2π/λ (2 % slack: the
    requested angle's λ may differ slightly from the CSL one). L: cell side (Å)."""
    f = np.asarray(field, float)
    F = np.fft.fft2(f)
    ny, nx = f.shape
    H, K = np.meshgrid(np.fft.fftfreq(nx, 1.0 / nx), np.fft.fftfreq(ny, 1.0 / ny))
    keep = np.hypot(H, K) <= harmonics * L / moire_period * 1.02
    return np.real(np.fft.ifft2(np.where(keep, F, 0.0)))


def region_map(twist: np.ndarray, L: float, moire_period: float, *, harmonics: float = 1.0,
               line_level: float = 0.4, node_level: float = 0.75, flat_deg: float = 1e-3
               ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Region code [y, x] (0 domain, 1 line, 2 node), the normalised filtered twist t [y, x], and whether
    a network was found. twist: interlayer twist map [y, x] (deg); NaN cells are set to the map mean."""
    if not 0.0 < line_level < node_level < 1.0:
        raise ValueError(f"need 0 < line_level ({line_level}) < node_level ({node_level}) < 1")
    f = np.asarray(twist, float)
    if not np.isfinite(f).any():
        raise ValueError("interlayer_twist is entirely non-finite")
    f = np.where(np.isfinite(f), f, np.nanmean(f))
    filt = lowpass_periodic(f, L, moire_period, harmonics)
    span = float(np.ptp(filt))
    if span < flat_deg:
        return np.zeros(f.shape, np.int8), np.zeros(f.shape), False
    t = (filt - filt.min()) / span
    code = np.where(t >= node_level, 2, np.where(t >= line_level, 1, 0)).astype(np.int8)
    return code, t, True


def mask_at(code: np.ndarray, x: np.ndarray, y: np.ndarray, points: np.ndarray, L: float) -> np.ndarray:
    """Region code of the grid cell under each point (k, 2; Å, wrapped into [0, L)) of a cell-centred
    grid with coordinates x (columns) and y (rows)."""
    p = np.asarray(points, float).reshape(-1, 2) % L
    ix = np.floor(p[:, 0] / (L / len(x))).astype(int) % len(x)
    iy = np.floor(p[:, 1] / (L / len(y))).astype(int) % len(y)
    return code[iy, ix]


def atom_groups(positions: np.ndarray, plane: np.ndarray, interface_planes: list[int], code: np.ndarray,
                x: np.ndarray, y: np.ndarray, L: float, interface_depth: int = 1) -> np.ndarray:
    """Group code per atom (index into ``GROUPS``). plane: plane index per atom (bottom to top)."""
    plane = np.asarray(plane, int)
    iface = np.isin(plane, list(interface_planes))
    dist = np.min(np.abs(plane[:, None] - np.asarray(list(interface_planes))[None, :]), axis=1)
    out = np.where(dist <= interface_depth, GROUPS.index("interface_near"), GROUPS.index("bulk_like"))
    out[iface] = mask_at(code, x, y, positions[iface, :2], L)
    return out.astype(np.int8)


def network_fractions(ldos: np.ndarray, code: np.ndarray, found: bool = True) -> dict[str, float]:
    """Fraction of the in-plane LDOS map [y, x] (≥ 0) on lines and nodes, and their area fractions
    (uniform grid: cell counts). Enrichment = LDOS fraction / area fraction (1: no localisation)."""
    out = {}
    total = float(np.sum(ldos))
    for name, c in (("lines", 1), ("nodes", 2), ("domains", 0)):
        m = code == c
        if not found:
            out[f"ldos_fraction_{name}"] = out[f"area_fraction_{name}"] = float("nan")
            continue
        out[f"ldos_fraction_{name}"] = float(np.sum(ldos[m]) / total) if total > 0 else float("nan")
        out[f"area_fraction_{name}"] = float(m.mean())
    for name in ("lines", "nodes", "domains"):
        a = out[f"area_fraction_{name}"]
        out[f"enrichment_{name}"] = out[f"ldos_fraction_{name}"] / a if a > 0 else float("nan")
    return out
