"""Topology of 2D vector fields: plaquette winding numbers, vortex detection, skyrmion number.

Array convention (all functions): a field on a grid is indexed ``[i, j] = [y, x]``
(row = y, column = x), the layout of the ``(y, x)`` dims of every twistox artifact.
Plaquette ``(i, j)`` has the corners ``(i, j), (i, j+1), (i+1, j+1), (i+1, j)``,
visited in this order, which is counter-clockwise seen from +z in a right-handed
(x, y) frame; on a periodic grid indices wrap, otherwise the last row/column of
plaquettes does not exist and maps are ``(ny-1, nx-1)``.

Winding n = (1/2π) Σ wrap(Δφ) around the plaquette, φ = atan2(v_y, v_x): +1 for a
vortex (source, sink, CW or CCW alike), −1 for an antivortex. n does not tell CW
from CCW, so each defect also gets its helicity γ (angle of v against the radial
direction: 0 source, π sink, +π/2 CCW, −π/2 CW), measured on a ring around the core.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np
from scipy import ndimage

TWO_PI = 2.0 * np.pi


def _wrap(a: np.ndarray) -> np.ndarray:
    """Wrap angles into [-π, π)."""
    return (a + np.pi) % TWO_PI - np.pi


def _corners(a: np.ndarray, periodic: bool) -> tuple[np.ndarray, ...]:
    """The four plaquette corners of a (ny, nx) array in loop order."""
    if periodic:
        a01 = np.roll(a, -1, axis=1)
        a11 = np.roll(a01, -1, axis=0)
        a10 = np.roll(a, -1, axis=0)
        return a, a01, a11, a10
    return a[:-1, :-1], a[:-1, 1:], a[1:, 1:], a[1:, :-1]


def _check_pair(vx, vy) -> tuple[np.ndarray, np.ndarray]:
    vx = np.asarray(vx, dtype=float)
    vy = np.asarray(vy, dtype=float)
    if vx.ndim != 2 or vx.shape != vy.shape:
        raise ValueError(f"vx, vy must be 2D arrays of one shape [y, x]; got {vx.shape} and {vy.shape}")
    if min(vx.shape) < 2:
        raise ValueError(f"field grid {vx.shape} too small: need at least 2 x 2 points")
    return vx, vy


def field_scale(vx: np.ndarray, vy: np.ndarray) -> float:
    """Robust magnitude scale of a field: the 99th percentile of |v| over finite points."""
    mag = np.hypot(vx, vy)
    mag = mag[np.isfinite(mag)]
    return float(np.percentile(mag, 99)) if mag.size else 0.0


def plaquette_mask(vx, vy, rel_threshold: float = 0.02, periodic: bool = True) -> np.ndarray:
    """True where a plaquette's winding is meaningful.

    A plaquette is masked (False) when any corner is NaN or when two or more of its corners
    have |v| < rel_threshold * field_scale: there the direction is noise. A core sitting on
    a grid point (|v| = 0 at one corner) is kept, since the other three carry the texture.
    """
    vx, vy = _check_pair(vx, vy)
    mag = np.hypot(vx, vy)
    finite = np.isfinite(mag)
    thr = rel_threshold * field_scale(vx, vy)
    big = np.where(finite, mag, 0.0) >= thr if thr > 0 else finite
    fc = _corners(finite, periodic)
    bc = _corners(big, periodic)
    n_big = bc[0].astype(int) + bc[1] + bc[2] + bc[3]
    return fc[0] & fc[1] & fc[2] & fc[3] & (n_big >= 3)


def winding_map(vx, vy, *, periodic: bool = True, rel_threshold: float = 0.02) -> np.ndarray:
    """Integer winding number of every plaquette of the field (vx, vy) indexed [y, x].

    Returns an int array, shape (ny, nx) if periodic else (ny-1, nx-1); masked
    plaquettes (see `plaquette_mask`) are 0. On a periodic grid the map sums to 0.
    """
    vx, vy = _check_pair(vx, vy)
    phi = np.arctan2(np.nan_to_num(vy), np.nan_to_num(vx))
    # Wrapped phase steps are computed once per edge and shared by the two plaquettes on either
    # side, so interior edges cancel exactly (Stokes) even for steps of exactly ±π (e.g. around a
    # core sitting on a grid point): clusters then carry the right net winding, and a periodic map sums to 0.
    if periodic:
        ex = _wrap(np.roll(phi, -1, axis=1) - phi)          # edge (i, j) -> (i, j+1)
        ey = _wrap(np.roll(phi, -1, axis=0) - phi)          # edge (i, j) -> (i+1, j)
        total = ex + np.roll(ey, -1, axis=1) - np.roll(ex, -1, axis=0) - ey
    else:
        ex = _wrap(phi[:, 1:] - phi[:, :-1])
        ey = _wrap(phi[1:, :] - phi[:-1, :])
        total = ex[:-1, :] + ey[:, 1:] - ex[1:, :] - ey[:, :-1]
    n = np.rint(total / TWO_PI).astype(np.int64)
    return np.where(plaquette_mask(vx, vy, rel_threshold, periodic), n, 0)


def smooth_field(vx, vy, sigma_px: float, periodic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed components (sigma in grid points; wraps on a periodic grid)."""
    if sigma_px <= 0:
        return np.asarray(vx, float), np.asarray(vy, float)
    mode = "wrap" if periodic else "nearest"
    return (ndimage.gaussian_filter(np.asarray(vx, float), sigma_px, mode=mode),
            ndimage.gaussian_filter(np.asarray(vy, float), sigma_px, mode=mode))


# --------------------------------------------------------------------------- defects

@dataclass
class Defect:
    """One topological defect of a 2D field. Positions in Å, angles in rad."""

    x: float
    y: float
    winding: int
    helicity: float      # rad; vortex: angle of v against r̂ (0 source, π sink, ±π/2 CCW/CW); antivortex: phase offset
    circulation: str     # "ccw", "cw" or "none" (sources, sinks, antivortices)
    kind: str            # "ccw", "cw", "source", "sink", "antivortex", "higher-order"
    strength: float      # |mean of v·r̂ + i v·t̂| / mean |v| on the ring: 1 = ideal texture, ~0 = not a clean vortex
    n_plaquettes: int    # plaquettes with n != 0 merged into this defect

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Grid:
    """Regular grid of a field: first point (x0, y0), spacings (dx, dy) in Å, periodic or not."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    periodic: bool

    @property
    def lx(self) -> float:
        return self.nx * self.dx

    @property
    def ly(self) -> float:
        return self.ny * self.dy

    @classmethod
    def from_coords(cls, x: np.ndarray, y: np.ndarray, periodic: bool) -> "Grid":
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        if x.size < 2 or y.size < 2:
            raise ValueError("grid needs at least 2 points along x and y")
        dx, dy = np.diff(x), np.diff(y)
        # rtol 1e-4: coordinates stored as float32 (abTEM scan grids) vary by ~1e-6 relative
        if not (np.allclose(dx, dx[0], rtol=1e-4) and np.allclose(dy, dy[0], rtol=1e-4)) or dx[0] <= 0 or dy[0] <= 0:
            raise ValueError("x and y coordinates must be increasing and evenly spaced")
        return cls(float(x[0]), float(y[0]), float(dx[0]), float(dy[0]), x.size, y.size, periodic)

    def plaquette_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x, y (Å) of plaquette centres, 1D each (length nx, ny if periodic else nx-1, ny-1)."""
        mx = self.nx if self.periodic else self.nx - 1
        my = self.ny if self.periodic else self.ny - 1
        return self.x0 + (np.arange(mx) + 0.5) * self.dx, self.y0 + (np.arange(my) + 0.5) * self.dy

    def delta(self, dxy: np.ndarray) -> np.ndarray:
        """Minimum-image displacement (..., 2) on a periodic grid; unchanged otherwise."""
        if not self.periodic:
            return dxy
        box = np.array([self.lx, self.ly])
        return dxy - box * np.round(dxy / box)


def _clusters(wmap: np.ndarray, periodic: bool) -> tuple[np.ndarray, int]:
    """Label 8-connected clusters of nonzero plaquettes, joining labels across periodic edges."""
    labels, count = ndimage.label(wmap != 0, structure=np.ones((3, 3), int))
    if not periodic or count == 0:
        return labels, count
    parent = list(range(count + 1))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ny, nx = labels.shape
    # Pairs of neighbouring cells across the x and y seams (8-connectivity).
    for i in range(ny):
        for di in (-1, 0, 1):
            a, b = labels[i, nx - 1], labels[(i + di) % ny, 0]
            if a and b:
                parent[find(a)] = find(b)
    for j in range(nx):
        for dj in (-1, 0, 1):
            a, b = labels[ny - 1, j], labels[0, (j + dj) % nx]
            if a and b:
                parent[find(a)] = find(b)
    roots = np.array([find(k) for k in range(count + 1)])
    uniq, new = np.unique(roots[labels], return_inverse=True)
    new = new.reshape(labels.shape)
    # keep 0 as background
    if uniq[0] != 0:
        new = new + 1
    return new, int(len(uniq) - (1 if uniq[0] == 0 else 0))


def _circular_mean(points: np.ndarray, weights: np.ndarray, grid: Grid) -> np.ndarray:
    """Weighted mean position of points (k, 2), respecting periodicity via the first point."""
    d = grid.delta(points - points[0])
    c = points[0] + (weights[:, None] * d).sum(0) / weights.sum()
    if grid.periodic:
        # wrap into the cell [x0 - dx/2, x0 - dx/2 + Lx): [0, L) for a cell-centred grid
        ox, oy = grid.x0 - 0.5 * grid.dx, grid.y0 - 0.5 * grid.dy
        c = np.array([ox + (c[0] - ox) % grid.lx, oy + (c[1] - oy) % grid.ly])
    return c


def _classify(winding: int, helicity: float, strength: float, min_strength: float) -> tuple[str, str]:
    if winding == 1:
        # Within 45° of ±π/2 the texture curls; otherwise it is source- or sink-like.
        if strength < min_strength:
            return "none", "vortex"
        if abs(np.sin(helicity)) > np.sin(np.pi / 4):
            return ("ccw", "ccw") if np.sin(helicity) > 0 else ("cw", "cw")
        return "none", "source" if np.cos(helicity) > 0 else "sink"
    if winding == -1:
        return "none", "antivortex"
    return "none", "higher-order"


def ring_helicity(vx, vy, grid: Grid, centre: np.ndarray, winding: int, r_in: float, r_out: float
                  ) -> tuple[float, float]:
    """Helicity γ (rad, in (-π, π]) and strength of a defect from grid points with r_in <= r <= r_out (Å).

    Vortex (n = +1): v·r̂ and v·t̂ (t̂ = ẑ × r̂) averaged on the ring; γ = atan2(⟨v·t̂⟩, ⟨v·r̂⟩).
    Antivortex (n = -1): φ = -θ + γ, so γ = arg ⟨v̂ e^{iθ}⟩. Strength = |⟨...⟩| / ⟨|v|⟩ (1 for an ideal texture).
    """
    X = grid.x0 + np.arange(grid.nx) * grid.dx
    Y = grid.y0 + np.arange(grid.ny) * grid.dy
    d = grid.delta(np.stack(np.broadcast_arrays(X[None, :] - centre[0], Y[:, None] - centre[1]), axis=-1))
    r = np.hypot(d[..., 0], d[..., 1])
    sel = (r >= r_in) & (r <= r_out) & np.isfinite(vx) & np.isfinite(vy)
    if sel.sum() < 4:
        return float("nan"), float("nan")
    theta = np.arctan2(d[..., 1], d[..., 0])[sel]
    z = (vx + 1j * vy)[sel]
    norm = np.abs(z).sum()
    if norm == 0:
        return float("nan"), 0.0
    if winding == -1:
        s = (z * np.exp(1j * theta)).sum() / norm
    else:
        s = (z * np.exp(-1j * theta)).sum() / norm   # = ⟨v·r̂⟩ + i⟨v·t̂⟩ weighted
    return float(np.angle(s)), float(np.abs(s))


def find_defects(vx, vy, x, y, *, periodic: bool = True, rel_threshold: float = 0.02, smoothing_px: float = 0.0,
                 merge_radius: float | None = None, ring_radius: float | None = None,
                 min_strength: float = 0.2) -> tuple[list[Defect], np.ndarray]:
    """Vortex / antivortex defects of a 2D field indexed [y, x] on coords x, y (Å).

    Steps: optional Gaussian smoothing (sigma = smoothing_px grid points); plaquette
    winding map; 8-connected clusters of n != 0 (periodic seams joined), clusters
    closer than merge_radius (Å; default 1.5 grid spacings) merged; clusters with net
    n = 0 (noise pairs) dropped; position = |n|-weighted mean of plaquette centres;
    helicity on a ring r in [ring_radius/2, ring_radius] (default: 3 grid spacings,
    at most 0.4 x the distance to the nearest other defect).
    Returns (defects, winding map).
    """
    vx, vy = _check_pair(vx, vy)
    grid = Grid.from_coords(x, y, periodic)
    if vx.shape != (grid.ny, grid.nx):
        raise ValueError(f"field shape {vx.shape} does not match coords (y {grid.ny}, x {grid.nx})")
    sx, sy = smooth_field(np.nan_to_num(vx), np.nan_to_num(vy), smoothing_px, periodic)
    sx = np.where(np.isfinite(vx), sx, np.nan)
    sy = np.where(np.isfinite(vy), sy, np.nan)
    wmap = winding_map(sx, sy, periodic=periodic, rel_threshold=rel_threshold)
    labels, count = _clusters(wmap, periodic)
    pxc, pyc = grid.plaquette_centres()
    h = min(grid.dx, grid.dy)
    merge = 1.5 * max(grid.dx, grid.dy) if merge_radius is None else merge_radius
    clusters = []
    for k in range(1, count + 1):
        ii, jj = np.nonzero(labels == k)
        w = wmap[ii, jj]
        pts = np.stack([pxc[jj], pyc[ii]], axis=1)
        clusters.append({"pts": pts, "w": w})
    # Greedy merge of clusters whose closest plaquettes lie within `merge`.
    merged = True
    while merged and len(clusters) > 1:
        merged = False
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                pa, pb = clusters[a]["pts"], clusters[b]["pts"]
                d = grid.delta(pa[:, None, :] - pb[None, :, :])
                if np.hypot(d[..., 0], d[..., 1]).min() <= merge:
                    clusters[a] = {"pts": np.vstack([pa, pb]), "w": np.concatenate([clusters[a]["w"], clusters[b]["w"]])}
                    del clusters[b]
                    merged = True
                    break
            if merged:
                break
    cores = []
    for c in clusters:
        n = int(c["w"].sum())
        if n == 0:
            continue
        wts = np.abs(c["w"]).astype(float)
        cores.append((_circular_mean(c["pts"], wts, grid), n, len(c["w"])))
    defects = []
    centres = np.array([c[0] for c in cores]) if cores else np.zeros((0, 2))
    for idx, (pos, n, npl) in enumerate(cores):
        r_out = 3.0 * h if ring_radius is None else ring_radius
        if len(cores) > 1:
            d = grid.delta(centres - pos)
            dist = np.hypot(d[:, 0], d[:, 1])
            dist[idx] = np.inf
            r_out = min(r_out, 0.4 * dist.min())
        r_out = max(r_out, 1.5 * h)
        gam, strength = ring_helicity(sx, sy, grid, pos, n, 0.5 * r_out, r_out)
        circ, kind = _classify(n, gam, strength, min_strength)
        defects.append(Defect(float(pos[0]), float(pos[1]), n, gam, circ, kind, strength, npl))
    return defects, wmap


# --------------------------------------------------------------------------- skyrmion number

def _unit(px, py, pz) -> tuple[np.ndarray, np.ndarray]:
    p = np.stack([np.asarray(px, float), np.asarray(py, float), np.asarray(pz, float)], axis=-1)
    if p.ndim != 3:
        raise ValueError(f"px, py, pz must be 2D arrays [y, x] of one shape; got {np.shape(px)}")
    mag = np.linalg.norm(p, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = p / mag[..., None]
    return u, mag


def _solid_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Signed solid angle of the spherical triangle (a, b, c) (Berg & Lüscher 1981), in (-2π, 2π]."""
    num = np.einsum("...i,...i", a, np.cross(b, c))
    den = 1.0 + np.einsum("...i,...i", a, b) + np.einsum("...i,...i", b, c) + np.einsum("...i,...i", c, a)
    return 2.0 * np.arctan2(num, den)


def skyrmion_density(px, py, pz, *, periodic: bool = True, rel_threshold: float = 0.02) -> np.ndarray:
    """Topological charge per plaquette, q = (Ω₁ + Ω₂)/4π for the two triangles of each plaquette.

    Triangles (i,j),(i,j+1),(i+1,j+1) and (i,j),(i+1,j+1),(i+1,j) are both counter-clockwise
    in (x, y), so Σq approximates Q = (1/4π)∫ û·(∂ₓû × ∂ᵧû) dA (+1 for û = (2x, 2y, 1−r²)/(1+r²)).
    Plaquettes with a corner |P| < rel_threshold * max|P| (or NaN) are masked to 0.
    """
    u, mag = _unit(px, py, pz)
    ok = np.isfinite(mag) & (mag >= rel_threshold * np.nanmax(mag))
    u = np.where(ok[..., None], u, 0.0)
    if periodic:
        u01 = np.roll(u, -1, axis=1)
        u11 = np.roll(u01, -1, axis=0)
        u10 = np.roll(u, -1, axis=0)
    else:
        u, u01, u11, u10 = u[:-1, :-1], u[:-1, 1:], u[1:, 1:], u[1:, :-1]
    q = (_solid_angle(u, u01, u11) + _solid_angle(u, u11, u10)) / (4.0 * np.pi)
    oc = _corners(ok, periodic)
    return np.where(oc[0] & oc[1] & oc[2] & oc[3], q, 0.0)


def skyrmion_number(px, py, pz, *, periodic: bool = True, rel_threshold: float = 0.02,
                    region: np.ndarray | None = None) -> float:
    """Skyrmion number Q = Σ q over plaquettes (Berg–Lüscher; integer on a periodic grid without masked
    plaquettes). ``region``: optional boolean plaquette mask to sum a part (e.g. one meron: ±1/2)."""
    q = skyrmion_density(px, py, pz, periodic=periodic, rel_threshold=rel_threshold)
    if region is not None:
        q = np.where(region, q, 0.0)
    return float(q.sum())


def node_distances(defects: list[Defect], nodes: np.ndarray, box: tuple[float, float] | None) -> np.ndarray:
    """Distance (Å) from each defect to its nearest node (minimum image in a periodic box (Lx, Ly))."""
    nodes = np.asarray(nodes, float).reshape(-1, 2)
    if not defects or nodes.size == 0:
        return np.full(len(defects), np.nan)
    p = np.array([[d.x, d.y] for d in defects])
    diff = p[:, None, :] - nodes[None, :, :]
    if box is not None:
        b = np.asarray(box, float)
        diff = diff - b * np.round(diff / b)
    return np.hypot(diff[..., 0], diff[..., 1]).min(axis=1)
