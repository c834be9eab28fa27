"""Periodic small cells carved around chosen atoms of a large twisted supercell.

A twisted supercell of the target angle (Σ145: 1450 atoms) is far beyond DFT on a CPU, but the
environments a potential gets wrong are local. ``carve_cell`` cuts a square in-plane patch around
one atom, keeps the whole vertical stack (every plane of both layers, the source's vacuum) and
makes the patch periodic in x and y. The patch's sides are lattice vectors of one layer (by default
the centre atom's own layer): side vectors ``a R(φ) (p, q)`` and ``a R(φ) (-q, p)`` with φ that
layer's [100] angle to global x, so the patch is a Σ = p² + q² square of that layer (Σ5: (2, 1),
Σ9: (3, 0), Σ13: (3, 2), Σ17: (4, 1)) and that layer is a perfect periodic crystal in the carved
cell. The other (rotated) layer has a seam at the patch boundary; seam pairs closer than
``min_distance`` lose the atom farther from the centre.

Exactness: in-plane displacements from the centre are kept as in the source (minimum image of the
source cell), so every atom within ``exact_radius`` = (distance from the centre to the nearest patch
edge) − ``min_distance`` of the centre has exactly the source's neighbour vectors out to that radius
(atoms removed at the seam lie within ``min_distance`` of an edge).

Frames: carved coordinates are rotated by −φ about z so that the cell is axis-aligned
(x ∥ first side vector); the rotation is recorded (``carve_rotation_deg``, CCW positive). Lengths in Å.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from ase import Atoms

from twistox.supercell.lattice import rotation2

CARVED_TYPE = "twisted_carved"
_KEEP_ARRAYS = ("layer", "plane", "plane_kind")


def patch_vector(sigma: int) -> tuple[int, int]:
    """Integer (p, q), p >= q >= 0, with p² + q² = sigma (the smallest q): the patch side in lattice units.

    Raises ValueError when sigma is not a sum of two squares (e.g. 3, 6, 7, 11).
    """
    s = int(sigma)
    if s < 1 or s != sigma:
        raise ValueError(f"sigma: {sigma!r} is not allowed; allowed: integer p^2 + q^2 >= 1 (1, 2, 4, 5, 8, 9, 10, 13, ...)")
    for q in range(0, math.isqrt(s // 2) + 1):
        p2 = s - q * q
        p = math.isqrt(p2)
        if p * p == p2:
            return p, q
    raise ValueError(f"sigma: {sigma} is not a sum of two squares; allowed e.g. 4, 5, 8, 9, 10, 13, 16, 17, 18, 20, 25")


def _layer_angle(source: Atoms, layer: int, angle_deg: float | None) -> float:
    if angle_deg is not None:
        return float(angle_deg)
    angles = source.info.get("layer_angles_deg")
    if angles is None:
        return 0.0  # untwisted / bulk sources: lattice axes along x, y
    return float(angles[layer])


def _minimum_image_xy(d: np.ndarray, cell: np.ndarray, pbc) -> np.ndarray:
    """In-plane minimum image of displacements d (N, 3) in the source cell (periodic axes only)."""
    d = d.copy()
    frac = d @ np.linalg.inv(cell)
    for ax in range(3):
        if pbc[ax]:
            frac[:, ax] -= np.round(frac[:, ax])
    return frac @ cell


_BASE_OFFSET = (1.234e-3, 2.345e-3)  # units of a: no lattice site (multiples of a/2) on a patch edge


def carve_cell(source: Atoms, center: int, sigma: int = 9, a: float | None = None, layer: int | None = None,
               angle_deg: float | None = None, min_distance: float = 1.2, stoichiometric: bool = True,
               max_shift: float = 0.4) -> Atoms:
    """Periodic Σ patch around ``center`` (see :func:`carve_patch`), stoichiometric where possible.

    With ``stoichiometric``, patch origins shifted by up to ``max_shift`` [units of a] per axis (grid of
    0.2 a, smallest shift first) are tried and the first whose composition has the source's A:B:X ratio
    is returned (the shift lowers ``exact_radius`` by at most its length); when none is, the unshifted
    patch is returned with ``stoichiometric`` False. ``carve_offset`` records the shift used [a].
    """
    steps = np.arange(-max_shift, max_shift + 1e-9, 0.2) if stoichiometric else np.zeros(1)
    shifts = sorted(((float(x), float(y)) for x in steps for y in steps), key=lambda t: (t[0] ** 2 + t[1] ** 2, t))
    first = None
    for sx, sy in shifts:
        cut = carve_patch(source, center, sigma, a, layer, angle_deg, min_distance,
                          (_BASE_OFFSET[0] + sx, _BASE_OFFSET[1] + sy))
        cut.info["carve_offset"] = [sx, sy]
        first = first or cut
        if cut.info["stoichiometric"] or not stoichiometric:
            return cut
    return first


def carve_patch(source: Atoms, center: int, sigma: int = 9, a: float | None = None, layer: int | None = None,
                angle_deg: float | None = None, min_distance: float = 1.2,
                origin_offset: tuple[float, float] = _BASE_OFFSET) -> Atoms:
    """Periodic Σ = p² + q² square patch of ``source`` around atom ``center`` (whole vertical stack).

    Args:
        source: the large cell (periodic in x, y; z periodic or with vacuum, kept as is).
        center: index of the centre atom in ``source``.
        sigma: patch area in unit cells of the aligned layer (p² + q²; 9 = 3 x 3 cells).
        a: lattice constant [Å] (default ``source.info['a']``).
        layer: which layer's lattice the patch is commensurate with (default: the centre atom's
            ``layer`` array value, 0 when absent).
        angle_deg: that layer's [100] angle to global x [deg, CCW] (default from
            ``source.info['layer_angles_deg']``, 0 when absent).
        min_distance: seam pairs closer than this [Å] lose the atom farther from the centre.
        origin_offset: patch-origin shift from the centred position [in units of a] so that no atom sits
            exactly on a patch edge (lattice sites are at multiples of a/2).

    Returns Atoms (axis-aligned cell [L, L, Lz], L = a sqrt(sigma)) with the source's per-atom
    arrays ``layer``/``plane``/``plane_kind`` when present, array ``source_index``, and info:
    ``config_type`` = 'twisted_carved', ``carve_center`` (source index), ``carve_center_position``,
    ``carve_sigma``, ``carve_patch`` (p, q), ``carve_radius`` (L/2, Å), ``exact_radius`` (Å),
    ``carve_rotation_deg``, ``carve_layer``, ``n_seam_removed``, ``composition`` (formula), ``stoichiometric``
    (same A:B:X ratio as the source), and the source's ``sigma``/``theta_deg``/``m``/``n`` as
    ``source_sigma``/``source_theta_deg``/``source_m``/``source_n`` when present.
    """
    n_src = len(source)
    if not 0 <= int(center) < n_src:
        raise ValueError(f"center: {center!r} is not allowed; allowed: atom index 0..{n_src - 1}")
    if not all(source.pbc[:2]):
        raise ValueError("source: must be periodic in x and y (pbc[0], pbc[1]); allowed: a supercell or slab")
    a = float(a if a is not None else source.info.get("a", float("nan")))
    if not (a > 0):
        raise ValueError("a: lattice constant [Å] not given and source.info['a'] missing; allowed: a > 0")
    p, q = patch_vector(sigma)
    L = a * math.sqrt(p * p + q * q)
    layer_arr = source.arrays.get("layer")
    lay = int(layer if layer is not None else (layer_arr[center] if layer_arr is not None else 0))
    phi = _layer_angle(source, lay, angle_deg) + math.degrees(math.atan2(q, p))  # first side vector's angle
    src_cell = np.asarray(source.cell)
    # a patch wider than the source's period would hold two images of some atoms
    period = min(np.linalg.norm(src_cell[0]), np.linalg.norm(src_cell[1]))
    if L > period + 1e-9:
        raise ValueError(f"sigma: patch side {L:.3f} Å exceeds the source's in-plane period {period:.3f} Å; "
                         "allowed: a smaller sigma")

    c = source.positions[center]
    d0 = _minimum_image_xy(source.positions - c, src_cell, source.pbc)
    d0[:, 2] = source.positions[:, 2] - c[2]  # z kept as is (no wrapping across the vacuum)
    rot = np.eye(3)
    rot[:2, :2] = rotation2(-phi)
    off = np.asarray(origin_offset, float) * a
    # every in-plane periodic image next to the minimum image: a rotated patch may reach past the
    # source's Wigner-Seitz cell at its corners
    images = [i * src_cell[0] + j * src_cell[1] for i in (-1, 0, 1) for j in (-1, 0, 1)]
    ds = np.concatenate([(d0 + t) @ rot.T for t in images])
    # the patch [-L/2, L/2) in the rotated frame, shifted by off: tiles of side L partition the plane,
    # so each site of the aligned layer is counted exactly once
    s_all = (ds[:, :2] + L / 2.0 - off) / L
    inside = np.all(np.floor(s_all) == 0, axis=1)
    idx = np.flatnonzero(inside) % n_src
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"sigma: patch side {L:.3f} Å holds two images of one atom of the source; "
                         "allowed: a smaller sigma")
    d = ds[inside]
    s = s_all[inside]
    xy = s * L
    z = source.positions[idx, 2]
    pos = np.column_stack([xy, z])
    cell = np.diag([L, L, float(src_cell[2, 2]) if not source.pbc[2] else float(np.linalg.norm(src_cell[2]))])
    if source.pbc[2] and not np.allclose(src_cell[2, :2], 0.0):
        raise ValueError("source: a periodic z axis must be perpendicular to the plane")

    # seam: pairs closer than min_distance across the periodic boundary -> drop the atom farther from the centre
    r_centre = np.linalg.norm(d[:, :2], axis=1)
    keep = np.ones(len(idx), bool)
    n_removed = 0
    if len(idx) > 1:
        from ase.neighborlist import neighbor_list

        tmp = Atoms(source.numbers[idx], pos, cell=cell, pbc=(True, True, bool(source.pbc[2])))
        ii, jj, shifts = neighbor_list("ijS", tmp, float(min_distance))
        seam = np.any(shifts[:, :2] != 0, axis=1) & (ii < jj)
        for i, j in sorted(zip(ii[seam], jj[seam]), key=lambda t: -max(r_centre[t[0]], r_centre[t[1]])):
            if keep[i] and keep[j]:
                drop = i if r_centre[i] > r_centre[j] else j
                keep[drop] = False
                n_removed += 1
    idx, pos = idx[keep], pos[keep]

    out = Atoms(source.numbers[idx], pos, cell=cell, pbc=(True, True, bool(source.pbc[2])))
    for name in _KEEP_ARRAYS:
        if name in source.arrays:
            out.set_array(name, np.asarray(source.arrays[name])[idx])
    out.set_array("source_index", idx.astype(np.int64))
    centre_xy = L / 2.0 - off
    edge = float(min(centre_xy.min(), (L - centre_xy).min()))
    comp = Counter(out.get_chemical_symbols())
    info = {
        "config_type": CARVED_TYPE, "carve_center": int(center), "carve_center_position": c.tolist(),
        "carve_sigma": int(p * p + q * q), "carve_patch": [p, q], "carve_radius": L / 2.0,
        "exact_radius": max(0.0, edge - float(min_distance)), "carve_rotation_deg": -phi, "carve_layer": lay,
        "n_seam_removed": n_removed, "composition": out.get_chemical_formula(),
        "stoichiometric": _same_ratio(comp, Counter(source.get_chemical_symbols())), "a": a,
    }
    for k in ("sigma", "theta_deg", "m", "n"):
        if k in source.info:
            info[f"source_{k}"] = source.info[k]
    out.info.update(info)
    return out


def _same_ratio(c1: Counter, c2: Counter) -> bool:
    """Same set of species in the same proportions (integer cross-multiplication, no rounding)."""
    if set(c1) != set(c2):
        return False
    els = sorted(c1)
    return all(c1[e] * c2[els[0]] == c2[e] * c1[els[0]] for e in els)


def most_uncertain(force_std: np.ndarray, positions: np.ndarray, cell: np.ndarray, k: int,
                   min_separation: float) -> list[int]:
    """Indices of the k atoms with the largest committee force std [eV/Å], greedily, each at least
    ``min_separation`` [Å] (in-plane minimum image) from those already picked: distinct environments."""
    order = np.argsort(-np.asarray(force_std), kind="stable")
    picked: list[int] = []
    inv = np.linalg.inv(cell[:2, :2])
    for i in order:
        if len(picked) >= k:
            break
        if picked:
            dxy = positions[picked, :2] - positions[i, :2]
            f = dxy @ inv
            f -= np.round(f)
            if np.linalg.norm(f @ cell[:2, :2], axis=1).min() < min_separation:
                continue
        picked.append(int(i))
    return picked


def carve_uncertain(source: Atoms, force_std: np.ndarray, k: int, sigma: int = 9, min_distance: float = 1.2,
                    min_separation: float | None = None) -> list[Atoms]:
    """Carved cells around the k most uncertain, mutually separated atoms of ``source``.

    ``force_std`` (N,) [eV/Å]: per-atom committee force std (``calc.results['force_std']``); recorded
    per cell as ``carve_force_std``. ``min_separation`` defaults to the patch half side.
    """
    force_std = np.asarray(force_std, float)
    if force_std.shape != (len(source),):
        raise ValueError(f"force_std: shape {force_std.shape} does not match {len(source)} atoms")
    p, q = patch_vector(sigma)
    a = float(source.info.get("a", float("nan")))
    sep = min_separation if min_separation is not None else 0.5 * a * math.sqrt(p * p + q * q)
    out = []
    for i in most_uncertain(force_std, source.positions, np.asarray(source.cell), k, sep):
        at = carve_cell(source, i, sigma=sigma, min_distance=min_distance)
        at.info["carve_force_std"] = float(force_std[i])
        out.append(at)
    return out
