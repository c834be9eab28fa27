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
direction: 0 source, π sink, +π/2 CCW, −π/2 CW), measured on a ring around the core
(`twistox.analysis.defects`). No threshold on |v| enters a winding number: a vortex core has
|v| → 0, so a relative |v| cut drops exactly the cores; significance is judged per defect
against an absolute noise floor (`twistox.analysis.defects`, `twistox.analysis.noise`).
"""

from __future__ import annotations

from dataclasses import dataclass

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




class TopologyError(RuntimeError):
    """A topological invariant that must hold exactly does not (e.g. total winding != 0 on a periodic map)."""


def plaquette_mask(vx, vy, periodic: bool = True) -> np.ndarray:
    """True where a plaquette's winding is defined: all four corners finite (NaN/inf corners mask it).

    There is deliberately no |v| threshold: a vortex core has |v| -> 0 and must be counted.
    """
    vx, vy = _check_pair(vx, vy)
    fc = _corners(np.isfinite(vx) & np.isfinite(vy), periodic)
    return fc[0] & fc[1] & fc[2] & fc[3]


def winding_map(vx, vy, *, periodic: bool = True) -> np.ndarray:
    """Integer winding number of every plaquette of the field (vx, vy) indexed [y, x].

    Returns an int array, shape (ny, nx) if periodic else (ny-1, nx-1); plaquettes with a
    non-finite corner are 0 (see `plaquette_mask`). On a periodic grid without such plaquettes
    the map sums to exactly 0 (Stokes on a torus); otherwise a `TopologyError` is raised.
    """
    vx, vy = _check_pair(vx, vy)
    ok = plaquette_mask(vx, vy, periodic)
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
    n = np.where(ok, np.rint(total / TWO_PI).astype(np.int64), 0)
    if periodic and ok.all() and n.sum() != 0:
        raise TopologyError(f"total winding {int(n.sum())} != 0 on a periodic field of shape {vx.shape}: "
                            "the map is inconsistent (please report this field)")
    return n


def smooth_field(vx, vy, sigma_px: float, periodic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed components (sigma in grid points; wraps on a periodic grid)."""
    if sigma_px <= 0:
        return np.asarray(vx, float), np.asarray(vy, float)
    mode = "wrap" if periodic else "nearest"
    return (ndimage.gaussian_filter(np.asarray(vx, float), sigma_px, mode=mode),
            ndimage.gaussian_filter(np.asarray(vy, float), sigma_px, mode=mode))


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



@dataclass
class Loop:
    """The field on a closed CCW circle around a point: winding n, helicity γ (rad; atan2(⟨v·t̂⟩, ⟨v·r̂⟩),
    0 source, π sink, +π/2 CCW, −π/2 CW for n = +1), circulation ⟨v·t̂⟩/⟨|v|⟩ (−1..1, > 0 CCW seen
    from +z) and the mean and minimum |v| on the circle (field units)."""

    winding: int
    helicity: float
    circulation: float
    mean_magnitude: float
    min_magnitude: float


def loop_winding(vx, vy, grid: Grid, centre, radius: float, n_points: int = 96) -> Loop:
    """Winding of v along a circle of `radius` (Å) around `centre` (x, y; Å), traversed counter-clockwise.

    The field is interpolated bilinearly (wrapping on a periodic grid; an open grid gives NaNs outside).
    Steps between neighbouring points are far below π for a circle of many points, so n is exact
    as long as |v| does not vanish on the circle.
    """
    vx, vy = _check_pair(vx, vy)
    t = np.arange(n_points) * TWO_PI / n_points
    px = centre[0] + radius * np.cos(t)
    py = centre[1] + radius * np.sin(t)
    rows, cols = (py - grid.y0) / grid.dy, (px - grid.x0) / grid.dx
    mode = "grid-wrap" if grid.periodic else "constant"
    ux = ndimage.map_coordinates(np.nan_to_num(vx), [rows, cols], order=1, mode=mode, cval=np.nan)
    uy = ndimage.map_coordinates(np.nan_to_num(vy), [rows, cols], order=1, mode=mode, cval=np.nan)
    bad = ndimage.map_coordinates((~(np.isfinite(vx) & np.isfinite(vy))).astype(float), [rows, cols], order=1,
                                  mode=mode, cval=1.0)
    if (bad > 0).any() or not np.isfinite(ux).all():
        return Loop(0, float("nan"), float("nan"), float("nan"), float("nan"))
    phi = np.arctan2(uy, ux)
    n = int(np.rint(_wrap(np.roll(phi, -1) - phi).sum() / TWO_PI))
    z = (ux + 1j * uy) * np.exp(-1j * t)             # = v·r̂ + i v·t̂
    mag = np.abs(z)
    norm = mag.sum()
    if norm == 0:
        return Loop(n, float("nan"), float("nan"), 0.0, 0.0)
    return Loop(n, float(np.angle(z.sum())), float(z.imag.sum() / norm), float(mag.mean()), float(mag.min()))


def node_distances(defects, nodes: np.ndarray, box: tuple[float, float] | None) -> np.ndarray:
    """Distance (Å) from each defect (objects with .x, .y) to its nearest node (minimum image in a periodic
    box (Lx, Ly))."""
    nodes = np.asarray(nodes, float).reshape(-1, 2)
    if not len(defects) or nodes.size == 0:
        return np.full(len(defects), np.nan)
    p = np.array([[d.x, d.y] for d in defects])
    diff = p[:, None, :] - nodes[None, :, :]
    if box is not None:
        b = np.asarray(box, float)
        diff = diff - b * np.round(diff / b)
    return np.hypot(diff[..., 0], diff[..., 1]).min(axis=1)


_MOVED = ("Defect", "find_defects", "ring_helicity")


def __getattr__(name: str):
    """Defect search moved to twistox.analysis.defects; kept importable from here (public API)."""
    if name in _MOVED:
        from twistox.analysis import defects

        return getattr(defects, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def skyrmion_density(px, py, pz, *, periodic: bool = True, floor: float = 0.0) -> np.ndarray:
    """Topological charge per plaquette, q = (Ω₁ + Ω₂)/4π for the two triangles of each plaquette.

    Triangles (i,j),(i,j+1),(i+1,j+1) and (i,j),(i+1,j+1),(i+1,j) are both counter-clockwise
    in (x, y), so Σq approximates Q = (1/4π)∫ û·(∂ₓû × ∂ᵧû) dA (+1 for û = (2x, 2y, 1−r²)/(1+r²)).
    Plaquettes with a corner |P| < floor (absolute, units of P: the direction û is undefined there) or
    a non-finite corner are masked to 0.
    """
    u, mag = _unit(px, py, pz)
    ok = np.isfinite(mag) & (np.nan_to_num(mag) >= floor) & (np.nan_to_num(mag) > 0)
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


def skyrmion_number(px, py, pz, *, periodic: bool = True, floor: float = 0.0,
                    region: np.ndarray | None = None) -> float:
    """Skyrmion number Q = Σ q over plaquettes (Berg–Lüscher; integer on a periodic grid without masked
    plaquettes). ``region``: optional boolean plaquette mask to sum a part (e.g. one meron: ±1/2)."""
    q = skyrmion_density(px, py, pz, periodic=periodic, floor=floor)
    if region is not None:
        q = np.where(region, q, 0.0)
    return float(q.sum())
