"""Specimens for STEM simulation built from a (relaxed or rigid) twisted bilayer.

* Plan view: the bilayer is extended with rigid perovskite planes below and above to a
  total thickness (paper: 20 nm), centred along the beam with vacuum on both sides.
* Cross section: the bilayer is viewed along an in-plane direction of the mean
  crystal frame ([100] or [110]); the cell is re-cut so that direction is a lattice
  vector, periodic laterally, and repeated along the beam to the target thickness.

All lengths in Å. Input atoms carry the arrays ``layer``, ``plane``, ``plane_kind`` and
the info keys written by :func:`twistox.supercell.builder.build_bilayer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from ase import Atoms

STRUCTURES = ("relaxed", "rigid")
VIEWS = ("100", "110")


def structure_atoms(ds, which: str) -> Atoms:
    """Atoms of a supercell/relaxed store: ``relaxed`` = ``positions``; ``rigid`` = ``positions_rigid``.

    A supercell store (no ``positions_rigid``) is rigid already, so both names give its positions;
    asking it for ``relaxed`` is refused, because that would silently simulate the rigid model.
    """
    from twistox.core.io import atoms_from_dataset

    if which not in STRUCTURES:
        raise ValueError(f"stem.structures: {which!r} is not allowed; allowed: {', '.join(STRUCTURES)}")
    has_rigid = "positions_rigid" in ds
    if which == "relaxed" and not has_rigid:
        raise ValueError("stem.structures: 'relaxed' needs relaxed.zarr (with positions_rigid); "
                         "the input is a rigid supercell store; allowed here: rigid")
    atoms = atoms_from_dataset(ds, "positions_rigid" if (which == "rigid" and has_rigid) else "positions")
    for var in ("positions", "positions_rigid"):
        if var in ds and not np.isfinite(ds[var].values).all():
            raise ValueError(f"stem: {var} of the input structure has non-finite values (NaN/inf); "
                             "the relaxation or supercell store is broken")
    atoms.info["rigid_positions"] = ds["positions_rigid" if has_rigid else "positions"].values.copy()
    return atoms


def _plane_template(atoms: Atoms, layer: int, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """Rigid in-plane positions (n, 2) and numbers of one plane of ``kind`` in ``layer``.

    In a cubic perovskite all planes of one kind in one layer share their in-plane sites,
    so any rigid plane of that kind is the template for a bulk continuation.
    """
    rigid = atoms.info["rigid_positions"]
    sel_layer = atoms.arrays["layer"] == layer
    planes = np.unique(atoms.arrays["plane"][sel_layer & (atoms.arrays["plane_kind"] == kind)])
    if len(planes) == 0:
        raise ValueError(f"layer {layer} has no plane of kind {kind}: needs >= 2 planes to be extended")
    m = atoms.arrays["plane"] == planes[0]
    return rigid[m, :2].copy(), atoms.numbers[m].copy()


def _continue_layer(atoms: Atoms, layer: int, n_new: int, direction: int, a: float) -> Atoms:
    """``n_new`` rigid planes continuing ``layer`` outward (direction -1 down, +1 up), spacing a/2.

    The new planes keep the alternation of plane kinds, and are shifted laterally by the mean
    displacement (relaxed - rigid) of the layer's outer plane, so a rigidly translated layer
    stays in registry with its bulk continuation.
    """
    plane, kind = atoms.arrays["plane"], atoms.arrays["plane_kind"]
    lay = atoms.arrays["layer"] == layer
    outer = plane[lay].min() if direction < 0 else plane[lay].max()
    m = plane == outer
    z0 = float(atoms.positions[m, 2].mean())
    k0 = int(kind[m][0])
    shift = (atoms.positions[m, :2] - atoms.info["rigid_positions"][m, :2]).mean(axis=0)
    L = np.diag(atoms.cell)[:2]
    out = Atoms(cell=atoms.cell, pbc=atoms.pbc)
    pos, num, lays, kinds = [], [], [], []
    for j in range(1, n_new + 1):
        k = k0 if j % 2 == 0 else 1 - k0
        xy, nums = _plane_template(atoms, layer, k)
        xy = np.mod(xy + shift, L)
        pos.append(np.column_stack([xy, np.full(len(xy), z0 + direction * j * a / 2.0)]))
        num.append(nums)
        lays.append(np.full(len(xy), layer))
        kinds.append(np.full(len(xy), k))
    if not pos:
        return out
    out = Atoms(numbers=np.concatenate(num), positions=np.concatenate(pos), cell=atoms.cell, pbc=atoms.pbc)
    out.set_array("layer", np.concatenate(lays).astype(np.int32))
    out.set_array("plane_kind", np.concatenate(kinds).astype(np.int32))
    return out


def planview_sample(atoms: Atoms, thickness: float, vacuum: float, entrance: str) -> Atoms:
    """Plan-view specimen: bilayer + rigid bulk to ``thickness`` (Å, 0 = bilayer only), vacuum each side.

    The interface is centred in depth. abTEM's beam enters at z = 0 and travels along +z. With
    ``entrance='top'`` the specimen is turned over by a proper rotation, 180° about x:
    (x, y, z) -> (x, −y, −z) (y wrapped into the cell), so the beam meets the top layer first and
    the twist keeps its handedness (a z-mirror would image the opposite-handed bilayer in its own
    frame). Images then come out in the rotated frame; :func:`to_sample_frame` maps them back.
    ``entrance='bottom'`` leaves the bilayer as it is (beam along +z through the bottom layer).
    Returns Atoms with arrays ``layer``, ``plane_kind`` and
    info ``interface_depth`` (Å below the entrance surface), ``sample_thickness`` (Å), ``vacuum``.
    """
    if entrance not in ("top", "bottom"):
        raise ValueError(f"stem.sample.beam_entrance: {entrance!r} is not allowed; allowed: top, bottom")
    if thickness < 0 or vacuum < 0:
        raise ValueError("stem.sample.thickness_nm and stem.sample.vacuum must be >= 0")
    a = float(atoms.info["a"])
    z = atoms.positions[:, 2]
    zi = float(atoms.info["interface_z"])
    n_below = max(0, int(round((thickness / 2.0 - (zi - z.min())) / (a / 2.0))))
    n_above = max(0, int(round((thickness / 2.0 - (z.max() - zi)) / (a / 2.0))))
    core = atoms.copy()
    core.info = {k: v for k, v in atoms.info.items()}
    parts = [_continue_layer(atoms, 0, n_below, -1, a), core, _continue_layer(atoms, 1, n_above, +1, a)]
    keep = ("layer", "plane_kind")
    merged = Atoms(cell=atoms.cell, pbc=(True, True, True))
    arrays = {k: [] for k in keep}
    for p in parts:
        if len(p):
            merged += Atoms(numbers=p.numbers, positions=p.positions, cell=atoms.cell)
            for k in keep:
                arrays[k].append(p.arrays[k])
    for k in keep:
        merged.set_array(k, np.concatenate(arrays[k]).astype(np.int32))
    pos = merged.positions
    if entrance == "top":
        pos[:, 1:] = -pos[:, 1:]  # rotation by 180° about x (det +1), not a mirror
        zi = -zi
    zmin, zmax = pos[:, 2].min(), pos[:, 2].max()
    pos[:, 2] += vacuum - zmin
    merged.positions = pos
    Lx, Ly = atoms.cell[0, 0], atoms.cell[1, 1]
    merged.cell = np.diag([Lx, Ly, (zmax - zmin) + 2 * vacuum])
    merged.wrap(pbc=(True, True, False))
    merged.info = {k: atoms.info[k] for k in ("a", "supercell_length", "moire_period", "theta_deg", "sigma",
                                               "frame_angle_deg", "layer_angles_deg") if k in atoms.info}
    merged.info.update(interface_depth=float(zi + vacuum - zmin - vacuum), sample_thickness=float(zmax - zmin),
                       vacuum=float(vacuum), planes_added_below=n_below, planes_added_above=n_above,
                       beam_entrance=entrance)
    return merged


def to_sample_frame(da: xr.DataArray, entrance: str, ydim: str = "y", vector_dim: str | None = None,
                    ky_dim: str | None = None) -> xr.DataArray:
    """Map an array simulated on a :func:`planview_sample` back to the sample frame.

    For ``entrance='top'`` the specimen was rotated (x, y, z) -> (x, −y, −z): the value at sample
    y is the simulated one at −y (mod the cell). ``ydim`` must be a periodic grid j·Δy from 0 over
    one cell; vector components along ``vector_dim`` (labels 'x', 'y') get v_y -> −v_y; a
    reciprocal axis ``ky_dim`` is reversed (k_y -> −k_y). ``entrance='bottom'``: unchanged.
    """
    if entrance == "bottom":
        return da
    if entrance != "top":
        raise ValueError(f"stem.sample.beam_entrance: {entrance!r} is not allowed; allowed: top, bottom")
    y = da[ydim].values
    if len(y) > 1 and abs(y[0]) > 1e-6 * abs(y[1] - y[0]):
        raise ValueError(f"to_sample_frame: {ydim} must start at 0 (periodic scan over one cell)")
    out = da.isel({ydim: (-np.arange(len(y))) % len(y)}).assign_coords({ydim: y})
    if vector_dim is not None:
        sign = xr.DataArray([(-1.0 if str(c) == "y" else 1.0) for c in da[vector_dim].values], dims=vector_dim,
                            coords={vector_dim: da[vector_dim].values})
        out = (out * sign).assign_attrs(da.attrs)
    if ky_dim is not None:
        ky = da[ky_dim].values
        out = out.isel({ky_dim: slice(None, None, -1)}).assign_coords({ky_dim: -ky[::-1]})
    return out


@dataclass(frozen=True)
class CrossSectionGeometry:
    """In-plane beam direction of a cross section (global frame) and the re-cut cell (Å)."""

    view: str
    beam_angle_deg: float  # beam direction angle from global x
    lateral_period: float  # periodic length across the beam (image horizontal)
    beam_period: float  # periodic length along the beam
    transform: tuple[tuple[int, int], tuple[int, int]]  # supercell -> re-cut cell (integer)


def cross_section_geometry(atoms: Atoms, view: str) -> CrossSectionGeometry:
    """Beam along the mean crystal [100] or [110] (mean of the two layers = the supercell frame).

    The supercell is square and aligned with the frame rotated by ``frame_angle_deg`` (0 or 45),
    so mean [100] and [110] are global x or the diagonal, both lattice vectors of the supercell:
    the re-cut cell is exactly periodic across the beam, as in the paper.
    """
    if view not in VIEWS:
        raise ValueError(f"stem.cross_section.views: {view!r} is not allowed; allowed: {', '.join(VIEWS)}")
    L = float(atoms.cell[0, 0])
    angle = (float(atoms.info.get("frame_angle_deg", 0.0)) + (0.0 if view == "100" else 45.0)) % 90.0
    if np.isclose(angle, 0.0):
        return CrossSectionGeometry(view, 0.0, L, L, ((1, 0), (0, 1)))
    if np.isclose(angle, 45.0):
        return CrossSectionGeometry(view, 45.0, np.sqrt(2) * L, np.sqrt(2) * L, ((1, 1), (-1, 1)))
    raise ValueError(f"frame_angle_deg {angle} is not 0 or 45: cross-section direction is not a lattice vector")


def cross_section_sample(atoms: Atoms, view: str, thickness: float, vacuum: float) -> tuple[Atoms, CrossSectionGeometry]:
    """Cross-section specimen in abTEM's frame: x = across the beam (periodic), y = stacking z, z = beam.

    The re-cut cell is repeated along the beam to >= ``thickness`` (Å); ``vacuum`` (Å) pads the
    stacking direction on each side (abTEM is periodic in x, y; the padding isolates the images).
    Image coordinates: x in [0, lateral_period), y = stacking height with the bottom plane at
    ``vacuum``; info ``z_offset`` maps back: z_structure = y + z_offset.
    """
    from ase.build import make_supercell

    geo = cross_section_geometry(atoms, view)
    base = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=(True, True, True))
    for k in ("layer", "plane_kind", "plane"):
        if k in atoms.arrays:
            base.set_array(k, atoms.arrays[k])
    P = np.eye(3, dtype=int)
    P[:2, :2] = np.array(geo.transform)
    cut = make_supercell(base, P, wrap=True)
    th = np.deg2rad(geo.beam_angle_deg)
    b = np.array([np.cos(th), np.sin(th)])  # beam (in plane)
    u = np.array([-np.sin(th), np.cos(th)])  # across the beam; (u, z, b) is right-handed
    xy = cut.positions[:, :2]
    s_u = np.mod(xy @ u, geo.lateral_period)
    s_b = np.mod(xy @ b, geo.beam_period)
    z = cut.positions[:, 2]
    z0 = float(z.min()) - vacuum
    height = float(z.max() - z.min()) + 2 * vacuum
    n_rep = max(1, int(np.ceil(thickness / geo.beam_period - 1e-9)))
    pos = np.column_stack([s_u, z - z0, s_b])
    out = Atoms(numbers=cut.numbers, positions=pos, cell=np.diag([geo.lateral_period, height, geo.beam_period]),
                pbc=(True, True, True))
    for k in ("layer", "plane_kind", "plane"):
        if k in cut.arrays:
            out.set_array(k, cut.arrays[k])
    out = out.repeat((1, 1, n_rep))
    out.info.update(z_offset=z0, repeats_along_beam=n_rep, beam_thickness=n_rep * geo.beam_period,
                    view=view, beam_angle_deg=geo.beam_angle_deg, lateral_period=geo.lateral_period)
    return out, geo
