"""Network sites of a twisted bilayer: dislocation nodes, wall midpoints and AA domains.

From the local interlayer twist map θ_loc(x, y) = θ + ω_top − ω_bottom (strain.zarr
``interlayer_twist``, (y, x); deg): relaxation untwists the low-energy (AA, bulk-registry) domains
(θ_loc → 0, minima) and concentrates the twist at the screw-dislocation nodes (maxima); the walls
join nodes through saddles at their midpoints. The sites are the critical points of the map,
low-passed to |G| <= `harmonics` · 2π/λ (default 1: the fundamental, which fixes the sites of a square
network and cannot ripple in the flat domains; extrema on the wrong side of the mean are dropped), found as the defects of ∇θ_loc (index +1: extrema,
−1: saddles; on the torus #max − #saddle + #min = 0) and refined by Newton steps on the
trigonometric polynomial. Without a twist map (or a flat one: the rigid structure), the CSL
coincidence geometry is used: registry (0, 0) of the two B-site lattices = AA domain centre,
(½, ½) = node, (½, 0) and (0, ½) = wall midpoints (assumes the bulk registry is the low-energy
stacking, as for a bonded homo-interface).

Positions (k, 2) in Å in the cell [0, L)², x = column direction, y = row direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from twistox.analysis import periodicity as per
from twistox.analysis.defects import find_defects

CLASSES = ("node", "wall_midpoint", "domain")


@dataclass
class Sites:
    """Classified network sites (k, 2; Å) and the geometric moiré sites, with where they came from."""

    node: np.ndarray
    wall_midpoint: np.ndarray
    domain: np.ndarray
    coincidence: np.ndarray
    anticoincidence: np.ndarray
    source: str                    # "interlayer_twist" or "coincidence geometry"
    L: float
    moire_period: float
    note: str = ""
    twist: np.ndarray | None = None            # low-passed twist map [y, x] (deg) when used
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    twist_at: dict = field(default_factory=dict)  # class -> unfiltered twist (deg) at its sites (nearest pixel)

    def of(self, cls: str) -> np.ndarray:
        return getattr(self, cls)

    def scaled(self, L: float) -> "Sites":
        """The same sites in a cell of side ``L`` (Å): positions, grid and λ scaled by L / self.L. The relax
        stage rescales the rigid supercell uniformly to the potential's own a0, so a relaxed-frame field
        (strain, phase field, STEM of the relaxed structure) lives in a cell of another side."""
        k = float(L) / self.L
        if abs(k - 1.0) < 1e-12:
            return self
        pts = {c: getattr(self, c) * k for c in (*CLASSES, "coincidence", "anticoincidence")}
        return replace(self, **pts, L=float(L), moire_period=self.moire_period * k, x=self.x * k, y=self.y * k)

    def registry(self) -> dict:
        """Where the twist-map sites sit in the rigid moiré: minimum-image distance (Å, and in units of λ)
        of each domain centre to the nearest coincidence (AA, registry (0, 0)) site and of each node to
        the nearest anti-coincidence (registry (½, ½)) site, with the unfiltered twist (deg) there.
        Zero distances by construction when the sites are the coincidence geometry itself."""
        out: dict = {"source": self.source}
        for cls, ref, name in (("domain", self.coincidence, "coincidence"), ("node", self.anticoincidence,
                                                                                "anticoincidence")):
            pts = self.of(cls)
            if not len(pts) or not len(ref):
                continue
            dist = _nearest_distance(pts, ref, self.L)
            out[f"{cls}_to_{name}_A"] = [float(v) for v in dist]
            out[f"{cls}_to_{name}_max_over_lambda"] = float(dist.max() / self.moire_period)
            if cls in self.twist_at:
                out[f"twist_at_{cls}_deg"] = [float(v) for v in self.twist_at[cls]]
        return out

    def counts(self) -> dict[str, int]:
        return {c: int(len(self.of(c))) for c in CLASSES}

    def classify(self, points: np.ndarray, radius: float) -> tuple[list[str], np.ndarray]:
        """Site class of each point (k, 2; Å): the class of the nearest site (minimum image) if within
        `radius` (Å), else 'other'; and the distance to that site (Å)."""
        points = np.asarray(points, float).reshape(-1, 2)
        best = np.full(len(points), np.inf)
        cls = ["other"] * len(points)
        for c in CLASSES:
            s = self.of(c)
            if not len(s) or not len(points):
                continue
            dist = _nearest_distance(points, s, self.L)
            for i in np.flatnonzero(dist < best):
                best[i] = dist[i]
                cls[i] = c if dist[i] <= radius else "other"
        return cls, best


def _nearest_distance(points: np.ndarray, sites: np.ndarray, L: float) -> np.ndarray:
    """Minimum-image distance (Å) of each point (k, 2) to the nearest of ``sites`` (j, 2) in the square cell L."""
    d = points[:, None, :] - sites[None, :, :]
    d -= L * np.round(d / L)
    return np.hypot(d[..., 0], d[..., 1]).min(axis=1)


def geometric_sites(supercell: xr.Dataset, b_number: int) -> dict[str, np.ndarray]:
    """Moiré sites of the rigid CSL from the two B-site lattices: registry (0,0), (½,½), (½,0) ∪ (0,½)."""
    L = float(supercell.attrs["supercell_length"])
    a = float(supercell.attrs["a"])
    pos, num, lay = supercell["positions"].values, supercell["numbers"].values, supercell["layer"].values
    origins = []
    for k in (0, 1):
        sel = (num == b_number) & (lay == k)
        if not sel.any():
            raise ValueError(f"supercell has no B-site atoms (Z={b_number}) in layer {k}")
        origins.append(pos[sel][0])
    ang = supercell.attrs["layer_angles_deg"]
    walls = np.vstack([per.moire_sites(a, ang, origins, L, shift=(0.5, 0.0)),
                       per.moire_sites(a, ang, origins, L, shift=(0.0, 0.5))])
    return {"domain": per.moire_sites(a, ang, origins, L), "node": per.moire_sites(a, ang, origins, L, (0.5, 0.5)),
            "wall_midpoint": walls}


def _wrap_cell(p: np.ndarray, L: float) -> np.ndarray:
    p = p % L
    return np.where(p > L * (1 - 1e-9), p - L, p)        # round-off: L - eps is the site at 0


class _TrigPoly:
    """f(r) = Σ c_G exp(i G·(r − r0)) over a few wavevectors: exact value, gradient and Hessian anywhere."""

    def __init__(self, G: np.ndarray, c: np.ndarray, r0: np.ndarray):
        self.G, self.c, self.r0 = G, c, r0

    def value(self, r: np.ndarray) -> float:
        return float(np.real((self.c * np.exp(1j * (self.G @ (r - self.r0)))).sum()))

    def grad_hess(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = self.c * np.exp(1j * (self.G @ (r - self.r0)))
        g = np.real(1j * (self.G * e[:, None]).sum(0))
        hmat = -np.real(np.einsum("ki,kj,k->ij", self.G, self.G, e))
        return g, hmat


def twist_sites(twist: np.ndarray, x: np.ndarray, y: np.ndarray, L: float, moire_period: float,
                harmonics: float, flat_deg: float) -> tuple[dict[str, np.ndarray] | None, np.ndarray, str]:
    """Critical points of a periodic twist map [y, x] (deg) on a cell-centred grid of side L (Å).

    Low-pass: Fourier components with |G| <= harmonics · 2π/λ. Returns (sites by class or None when
    the filtered map varies by less than flat_deg, filtered map, note).
    """
    f = np.asarray(twist, float)
    note = ""
    bad = ~np.isfinite(f)
    if bad.all():
        return None, f, "interlayer_twist is entirely non-finite"
    if bad.any():
        note = f"{int(bad.sum())} non-finite twist points set to the map mean before filtering; "
        f = np.where(bad, np.nanmean(f), f)
    ny, nx = f.shape
    F = np.fft.fft2(f) / f.size
    H, K = np.meshgrid(np.fft.fftfreq(nx, 1.0 / nx), np.fft.fftfreq(ny, 1.0 / ny))
    # 2 % slack: the requested moiré period (rounded angle) may differ slightly from the CSL one
    keep = (np.hypot(H, K) <= harmonics * L / moire_period * 1.02) & ((H != 0) | (K != 0))
    Fk = np.where(keep, F, 0.0)
    Gx, Gy = 2 * np.pi * H / L, 2 * np.pi * K / L
    filt = np.real(np.fft.ifft2(Fk * f.size)) + np.real(F[0, 0])
    if np.ptp(filt) < flat_deg:
        return None, filt, note + f"twist map flat (peak-to-peak {np.ptp(filt):.2e} deg < {flat_deg} deg)"
    gx = np.real(np.fft.ifft2(1j * Gx * Fk * f.size))
    gy = np.real(np.fft.ifft2(1j * Gy * Fk * f.size))
    crit, _ = find_defects(gx, gy, x, y, periodic=True, merge_radius=0.1 * moire_period)
    poly = _TrigPoly(np.stack([Gx[keep], Gy[keep]], 1), Fk[keep], np.array([x[0], y[0]]))
    out: dict[str, list] = {c: [] for c in CLASSES}
    for c in crit:
        r = np.array([c.x, c.y])
        for _ in range(8):                                   # Newton on grad f = 0
            g, hm = poly.grad_hess(r)
            try:
                step = np.linalg.solve(hm, g)
            except np.linalg.LinAlgError:
                break
            if np.hypot(*step) > 0.1 * moire_period:
                break
            r = r - step
        _, hm = poly.grad_hess(r)
        ev = np.linalg.eigvalsh(hm)
        above = poly.value(r) > 0                       # relative to the map mean (c_0 is not in the sum)
        if c.winding == -1:
            out["wall_midpoint"].append(r % L)
        elif c.winding == 1 and ev.max() < 0 and above:
            out["node"].append(r % L)
        elif c.winding == 1 and ev.min() > 0 and not above:
            out["domain"].append(r % L)
        # else: a ripple extremum of a truncated sharp map (max below / min above the mean): no site
    sites = {k: _wrap_cell(np.array(v).reshape(-1, 2), L) for k, v in out.items()}
    return sites, filt, note


def _sample_nearest(f: np.ndarray, x: np.ndarray, y: np.ndarray, L: float, pts: np.ndarray) -> np.ndarray:
    """Values of a periodic map f[y, x] on a uniform grid at the pixels nearest to points (k, 2; Å)."""
    pts = np.asarray(pts, float).reshape(-1, 2)
    ix = np.round((pts[:, 0] - x[0]) / (x[1] - x[0])).astype(int) % len(x)
    iy = np.round((pts[:, 1] - y[0]) / (y[1] - y[0])).astype(int) % len(y)
    return np.asarray(f, float)[iy, ix]


def rescaled_supercell(supercell: xr.Dataset, L: float) -> xr.Dataset:
    """supercell.zarr contents in a cell of in-plane side ``L`` (Å): x, y positions, cell, ``a``,
    ``supercell_length`` and ``moire_period`` scaled by L / supercell_length (z unchanged); the
    frame of an artifact of the relaxed structure (its attrs ``supercell_length``)."""
    L0 = float(supercell.attrs["supercell_length"])
    k = float(L) / L0
    if abs(k - 1.0) < 1e-12:
        return supercell
    out = supercell.copy()
    pos = supercell["positions"].values.copy()
    pos[:, :2] *= k
    out["positions"] = (supercell["positions"].dims, pos, dict(supercell["positions"].attrs))
    if "cell" in supercell:
        cell = supercell["cell"].values.copy()
        cell[:2, :2] *= k
        out["cell"] = (supercell["cell"].dims, cell, dict(supercell["cell"].attrs))
    out.attrs = {**supercell.attrs, "supercell_length": float(L), "a": float(supercell.attrs["a"]) * k,
                 "moire_period": float(supercell.attrs["moire_period"]) * k}
    return out


def find_sites(supercell: xr.Dataset, strain: xr.Dataset | None, mode: str, b_number: int,
               harmonics: float, flat_deg: float) -> Sites:
    """Network sites of a sample. mode: 'auto' (twist map when strain.zarr has a non-flat
    `interlayer_twist`, else coincidence geometry), 'twist' (requires it) or 'geometry'; harmonics and
    flat_deg: config analysis.node_harmonics, analysis.twist_flat_deg (defaults in the schema)."""
    if mode not in ("auto", "twist", "geometry"):
        raise ValueError(f"analysis.nodes = {mode!r}; allowed: auto, twist, geometry")
    L = float(supercell.attrs["supercell_length"])
    lam = float(supercell.attrs["moire_period"])
    geo = geometric_sites(supercell, b_number)
    base = dict(coincidence=geo["domain"], anticoincidence=geo["node"], L=L, moire_period=lam)
    note = ""
    if mode != "geometry":
        if strain is not None and "interlayer_twist" in strain:
            tw = strain["interlayer_twist"].transpose("y", "x")
            sites, filt, note = twist_sites(tw.values, tw["x"].values, tw["y"].values, L, lam, harmonics, flat_deg)
            if sites is not None:
                expected = int(round((L / lam) ** 2))          # moiré cells per supercell: one node each
                if len(sites["node"]) != expected:
                    note += f"{len(sites['node'])} nodes found where (L/λ)² = {expected}; "
                raw = {c: _sample_nearest(tw.values, tw["x"].values, tw["y"].values, L, p)
                       for c, p in sites.items()}
                return Sites(**sites, **base, source="interlayer_twist", note=note.rstrip("; "), twist=filt,
                             x=tw["x"].values, y=tw["y"].values, twist_at=raw)
        else:
            note = "strain.zarr without interlayer_twist" if strain is not None else "no strain.zarr"
        if mode == "twist":
            raise ValueError(f"analysis.nodes = 'twist' needs a non-flat interlayer_twist map in strain.zarr ({note})")
    return Sites(node=geo["node"], wall_midpoint=geo["wall_midpoint"], domain=geo["domain"], **base,
                 source="coincidence geometry", note=note.rstrip("; "))
