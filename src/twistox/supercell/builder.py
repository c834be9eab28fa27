"""Commensurate twisted ABO3 perovskite bilayers on an axis-aligned square supercell.

Each layer is a (001) slab of alternating AO and BO2 planes (spacing a/2), rotated
about z so that its [100] axis makes ``CSL.layer_angles_deg[k]`` with global x. The
supercell is square, side L = a sqrt(Sigma), periodic in x and y, with vacuum in z.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from twistox.supercell.lattice import CSL, rotation2

AO, BO2 = 0, 1  # plane kinds


@dataclass(frozen=True)
class Perovskite:
    """Cubic ABO3 perovskite: species and lattice constant a (Å)."""

    A: str = "Sr"
    B: str = "Ti"
    X: str = "O"
    a: float = 3.905

    def plane_names(self) -> dict[str, int]:
        """Accepted names of the two plane kinds, e.g. {'SrO': 0, 'TiO2': 1, 'AO': 0, 'BO2': 1}."""
        return {f"{self.A}{self.X}": AO, f"{self.B}{self.X}2": BO2, "AO": AO, "BO2": BO2}

    def plane_kind(self, name: str, key: str) -> int:
        names = self.plane_names()
        if name not in names:
            raise ValueError(f"{key}: {name!r} is not a plane of {self.A}{self.B}{self.X}3; allowed: {sorted(names)}")
        return names[name]

    def plane_sites(self, kind: int) -> tuple[list[str], np.ndarray]:
        """Species and in-plane fractional positions of one plane's unit-cell basis."""
        if kind == AO:
            return [self.A, self.X], np.array([[0.0, 0.0], [0.5, 0.5]])
        return [self.B, self.X, self.X], np.array([[0.5, 0.5], [0.5, 0.0], [0.0, 0.5]])


@dataclass(frozen=True)
class BilayerSpec:
    """Geometry of the twisted bilayer (lengths in Å, translation in top-layer cell fractions)."""

    material: Perovskite = field(default_factory=Perovskite)
    interface: str = "SrO-TiO2"  # bottom layer's interface plane - top layer's interface plane
    bottom_cells: int = 2
    top_cells: int = 2
    bottom_outer: str = "auto"  # auto = stoichiometric slab
    top_outer: str = "auto"
    interlayer_spacing: float | None = None  # default a/2
    translation: tuple[float, float] = (0.0, 0.0)
    vacuum: float = 10.0

    def plane_sequence(self) -> tuple[list[int], list[int]]:
        """Plane kinds of the bottom layer (bottom to top) and the top layer (bottom to top)."""
        parts = self.interface.split("-")
        if len(parts) != 2:
            m = self.material
            names = (f"{m.A}{m.X}", f"{m.B}{m.X}2")  # the configured chemistry, e.g. SrO, TiO2
            allowed = [f"{x}-{y}" for x in names for y in names]
            raise ValueError(f"interface: {self.interface!r} is not 'BOTTOM-TOP'; allowed e.g. {allowed}")
        kb = self.material.plane_kind(parts[0], "interface")
        kt = self.material.plane_kind(parts[1], "interface")
        for key, cells in (("bottom_cells", self.bottom_cells), ("top_cells", self.top_cells)):
            if int(cells) != cells or cells < 1:
                raise ValueError(f"{key}: {cells!r} is not allowed; allowed: integer >= 1 unit cells")

        def layer(cells: int, k_int: int, outer: str, key: str) -> list[int]:
            k_out = 1 - k_int if outer == "auto" else self.material.plane_kind(outer, key)
            n = 2 * cells + (1 if k_out == k_int else 0)
            # alternate starting from the interface plane, walking away from the interface
            return [k_int if i % 2 == 0 else 1 - k_int for i in range(n)]

        bottom = layer(self.bottom_cells, kb, self.bottom_outer, "bottom_outer")[::-1]
        top = layer(self.top_cells, kt, self.top_outer, "top_outer")
        return bottom, top


def _layer_lattice_points(csl: CSL, angle_deg: float, a: float) -> np.ndarray:
    """Integer lattice points (layer units) of one layer inside the supercell, and the basis."""
    L = csl.supercell_length(a)
    # supercell vectors expressed in this layer's lattice units must be integer vectors
    B = rotation2(-angle_deg) @ (np.eye(2) * L / a)
    Bi = np.round(B)
    if np.abs(B - Bi).max() > 1e-6:
        raise RuntimeError(f"supercell not commensurate with layer at {angle_deg} deg")
    corners = np.array([[0, 0], Bi[:, 0], Bi[:, 1], Bi[:, 0] + Bi[:, 1]])
    lo, hi = corners.min(0).astype(int) - 1, corners.max(0).astype(int) + 1
    i, j = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    p = np.stack([i.ravel(), j.ravel()], 1).astype(float)
    s = np.round(p @ np.linalg.inv(Bi).T, 9)
    keep = np.all((s >= 0) & (s < 1), axis=1)
    pts = p[keep]
    if len(pts) != csl.sigma:
        raise RuntimeError(f"found {len(pts)} lattice points, expected Sigma = {csl.sigma}")
    return pts, Bi


def build_bilayer(csl: CSL, spec: BilayerSpec) -> Atoms:
    """Build the twisted bilayer as ASE Atoms with arrays 'layer', 'plane', 'plane_kind'.

    Atoms are ordered by plane (bottom to top). ``atoms.info`` records the geometry.
    """
    mat = spec.material
    a = mat.a
    if not (a > 0):
        raise ValueError(f"a: {a!r} is not allowed; allowed: lattice constant > 0 Å")
    if spec.vacuum < 0:
        raise ValueError(f"vacuum: {spec.vacuum!r} is not allowed; allowed: >= 0 Å")
    d_int = a / 2.0 if spec.interlayer_spacing is None else float(spec.interlayer_spacing)
    if not (d_int > 0):
        raise ValueError(f"interlayer_spacing: {d_int!r} is not allowed; allowed: > 0 Å")
    L = csl.supercell_length(a)
    bottom, top = spec.plane_sequence()

    z = []
    zc = spec.vacuum / 2.0
    for i in range(len(bottom)):
        z.append(zc + i * a / 2.0)
    z_top0 = z[-1] + d_int
    for i in range(len(top)):
        z.append(z_top0 + i * a / 2.0)
    kinds = bottom + top
    layers = [0] * len(bottom) + [1] * len(top)
    Lz = z[-1] + spec.vacuum / 2.0 + (0.0 if spec.vacuum > 0 else a / 2.0)

    symbols: list[str] = []
    pos, lay, pla, pk = [], [], [], []
    cache = {}
    for ip, (kind, k) in enumerate(zip(kinds, layers)):
        angle = csl.layer_angles_deg[k]
        if k not in cache:
            cache[k] = _layer_lattice_points(csl, angle, a)
        pts, Bi = cache[k]
        Binv = np.linalg.inv(Bi)
        shift = np.array(spec.translation, float) if k == 1 else np.zeros(2)
        sp, frac = mat.plane_sites(kind)
        for s_name, f in zip(sp, frac):
            s = ((pts + f + shift) @ Binv.T) % 1.0
            s[np.isclose(s, 1.0, atol=1e-10)] = 0.0
            xy = s * L
            pos.append(np.column_stack([xy, np.full(len(xy), z[ip])]))
            symbols += [s_name] * len(xy)
            lay.append(np.full(len(xy), k))
            pla.append(np.full(len(xy), ip))
            pk.append(np.full(len(xy), kind))
    atoms = Atoms(symbols=symbols, positions=np.concatenate(pos), cell=np.diag([L, L, Lz]), pbc=(True, True, False))
    atoms.set_array("layer", np.concatenate(lay).astype(np.int32))
    atoms.set_array("plane", np.concatenate(pla).astype(np.int32))
    atoms.set_array("plane_kind", np.concatenate(pk).astype(np.int32))
    ib = len(bottom) - 1
    atoms.info.update(
        m=csl.m, n=csl.n, sigma=csl.sigma, theta_deg=csl.theta_deg,
        theta_requested_deg=csl.theta_requested_deg if csl.theta_requested_deg is not None else csl.theta_deg,
        a=a, supercell_length=L, moire_period=csl.moire_period(a),
        frame_angle_deg=csl.frame_angle_deg, layer_angles_deg=list(csl.layer_angles_deg),
        interface_planes=[ib, ib + 1], interface_z=(z[ib] + z[ib + 1]) / 2.0,
        plane_z=list(map(float, z)), plane_kinds=kinds, interface=spec.interface,
        translation=list(map(float, spec.translation)), interlayer_spacing=d_int,
    )
    return atoms


def expected_atom_count(csl: CSL, spec: BilayerSpec) -> int:
    """Atoms from planes x Sigma: an AO plane has 2 Sigma atoms, a BO2 plane 3 Sigma."""
    bottom, top = spec.plane_sequence()
    return sum(2 * csl.sigma if k == AO else 3 * csl.sigma for k in bottom + top)
