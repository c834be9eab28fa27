"""strain.zarr assembly: per-atom fields -> grids on every plane -> Fourier fits, network periods.

Frames (PHYSICS.md §9): ``eps_xx``, ``eps_yy``, ``eps_xy`` are in the crystal frame of the plane's own
layer (x along that layer's [100], at ``layer_angles_deg[layer]`` from global x); ``eps_global``
(component [xx, yy, xy], plane, y, x) is the same tensor in the supercell frame, which is what the
phase field's eigenstrain and ``fourier_coefficients`` use. ``rotation`` (a scalar) is the same in both.
Vectors (off-centring, polarisation) are in the global frame. Grids are [y, x], cell-centred.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from twistox.core.io import atoms_from_dataset

from .cages import (CAGE_BROKEN, CAGE_EXTRA, CAGE_MOVED, b_site_offcentring, cage_offcentring, coordination_counts,
                    count_per_plane, polarization_from_offcentring, rigid_cages)
from .deformation import components, deformation_gradient, interlayer_twist_deg, to_layer_frame
from .fourier import dominant_period, fourier_eval, fourier_fit, fourier_grid, moire_harmonics, supercell_order
from .gridding import grid_complete, grid_coords, grid_periodic, grid_size

FIELDS = ["eps_xx", "eps_yy", "eps_xy", "rotation"]  # Fourier-fit fields (eps in the frame of the variable)
TENSOR = ["xx", "yy", "xy"]
_STRUCT_ATTRS = ("m", "n", "sigma", "theta_deg", "theta_requested_deg", "a", "moire_period", "supercell_length",
                 "interface_planes", "interface_z", "layer_angles_deg", "frame_angle_deg")


def species_numbers(atoms, species: dict | None = None) -> tuple[int, int]:
    """Atomic numbers (B, X) from the config's ``B``/``X`` symbols, else from the planes: X is the
    species of both AO and BO2 planes, B the other species of the BO2 planes."""
    from ase.data import atomic_numbers

    if species:
        return atomic_numbers[species["B"]], atomic_numbers[species["X"]]
    kinds, num = atoms.arrays["plane_kind"], atoms.numbers
    common = np.intersect1d(num[kinds == 0], num[kinds == 1])
    if len(common) != 1:
        raise ValueError(f"cannot tell the X species from the planes (shared species {common.tolist()}); pass species")
    x = int(common[0])
    b = np.setdiff1d(num[kinds == 1], [x])
    if len(b) != 1:
        raise ValueError(f"cannot tell the B species from the BO2 planes ({b.tolist()}); pass species")
    return int(b[0]), x


FLAT_STRAIN = 1e-9  # rms variation below which a strain map has no period (round-off ~1e-15)
FLAT_TWIST_DEG = 1e-7  # the same for the interlayer twist map (deg)


def _period(field: np.ndarray, L: float, order: int, atol: float) -> tuple[float, tuple[int, int]]:
    if not np.isfinite(field).all():
        return float("nan"), (0, 0)
    return dominant_period(field, L, max_order=order, atol=atol)


def block_offcentring(relaxed: xr.Dataset, atoms, cages, valid: np.ndarray, planes: np.ndarray, L: float, n: int,
                      sigma: float) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Standard error of the mean off-centring from MD block averages ``positions_blocks`` (block, atom, xyz; Å):
    per atom (N, 2) and gridded per plane (plane, y, x, xy), each block gridded with the same kernel (the
    gridding is linear, so the spread of the gridded blocks is the gridded mean's). None without blocks."""
    if "positions_blocks" not in relaxed:
        return None
    blocks = relaxed["positions_blocks"].transpose("block", "atom", "xyz").values
    nb = blocks.shape[0]
    if nb < 2 or not np.isfinite(blocks).all():
        raise ValueError(f"relaxed.zarr 'positions_blocks': need >= 2 finite MD blocks, got {nb} "
                         f"({int((~np.isfinite(blocks)).sum())} non-finite values)")
    d = np.stack([cage_offcentring(p, atoms.cell, atoms.pbc, cages) for p in blocks])  # (block, N, 2)
    se_atom = d.std(axis=0, ddof=1) / np.sqrt(nb)
    plane = atoms.arrays["plane"]
    out = np.full((len(planes), n, n, 2), np.nan)
    for ip, p in enumerate(planes):
        sel = (plane == p) & valid
        if sel.any():
            g = np.stack([grid_periodic(atoms.positions[sel, :2], d[k, sel], L, n, sigma) for k in range(nb)])
            out[ip] = g.std(axis=0, ddof=1) / np.sqrt(nb)
    return se_atom, out, nb


def strain_dataset(relaxed: xr.Dataset, cfg: dict, species: dict | None = None) -> xr.Dataset:
    """strain.zarr from a relaxed.zarr Dataset (needs ``positions`` and ``positions_rigid``).

    ``cfg``: the validated ``strain`` config section; ``species``: {"B": symbol, "X": symbol} of the system.
    """
    if "positions_rigid" not in relaxed:
        raise ValueError("relaxed.zarr has no 'positions_rigid': the B-site cages are taken from the rigid lattice")
    atoms = atoms_from_dataset(relaxed)
    rigid = atoms_from_dataset(relaxed, "positions_rigid")
    for name, at in (("positions", atoms), ("positions_rigid", rigid)):
        if not np.isfinite(at.positions).all():
            raise ValueError(f"relaxed.zarr '{name}': {int((~np.isfinite(at.positions)).any(1).sum())} atoms with "
                             "non-finite coordinates")
    info = atoms.info
    a, L, lam = float(info["a"]), float(info["supercell_length"]), float(info["moire_period"])
    theta = float(info["theta_deg"])
    angles = np.asarray(info["layer_angles_deg"], float)
    ib, it = (int(p) for p in info["interface_planes"])
    plane, layer, kinds = atoms.arrays["plane"], atoms.arrays["layer"], atoms.arrays["plane_kind"]
    pos = atoms.positions
    N = int(cfg["fourier_order"])
    Nsc = supercell_order(N, L, lam)
    n = grid_size(L, cfg["grid_spacing"])
    if n <= 2 * Nsc:
        raise ValueError(f"strain.grid_spacing: {n} points on L = {L:.2f} Å cannot resolve {Nsc} supercell harmonics "
                         f"(strain.fourier_order = {N} moiré harmonics); allowed: grid_spacing < {L / (2 * Nsc + 1):.3f} Å")
    sigma = float(cfg["smoothing_sigma"])

    # B-site cages from the rigid lattice; its B-X distance (a/2) is the reference lattice constant, so the
    # strain is measured against the lattice the stack was built with (the potential's own a, when relax uses it)
    b_num, x_num = species_numbers(atoms, species)
    cages = rigid_cages(rigid, b_num, x_num, cfg["bo_cutoff"], a)
    a = 2.0 * float(np.median(np.linalg.norm(cages.d_rigid[..., :2], axis=-1))) if len(cages.b_index) else a
    # per atom: strain in the global and the own layer's crystal frame, rotation
    sr = deformation_gradient(atoms, angles, a, cfg["neighbour_cutoff"] * a)
    eps_c = to_layer_frame(sr.eps, angles[layer])
    no_strain = ~np.isfinite(sr.eps).all(axis=(1, 2))
    # off-centring against the rigid cages, flags; flagged sites leave P
    oc = b_site_offcentring(atoms, cages, x_num, cfg["bo_cutoff"], a)
    isb = oc.cage_flags >= 0
    changed = oc.cage_flags > 0
    delta_p = np.where(changed[:, None], np.nan, oc.delta)
    P_atom = polarization_from_offcentring(delta_p, cfg["born_charge"], a)

    planes = np.unique(plane)
    npl = len(planes)
    g = grid_coords(L, n)
    # one gridding pass per plane: [crystal xx, yy, xy, global xx, yy, xy, rotation]
    vals = np.concatenate([components(eps_c).T, components(sr.eps).T, sr.rotation[:, None]], axis=1)
    crys = np.full((npl, 3, n, n), np.nan)
    glob = np.full((npl, 3, n, n), np.nan)
    rot = np.full((npl, n, n), np.nan)
    off = np.full((npl, n, n, 2), np.nan)
    shape_c = (npl, len(FIELDS), 2 * Nsc + 1, 2 * Nsc + 1)
    coef, coef_c = np.zeros(shape_c, complex), np.zeros(shape_c, complex)
    resid, resid_atoms = np.full(shape_c[:2], np.nan), np.full(shape_c[:2], np.nan)
    for ip, p in enumerate(planes):
        sel = plane == p
        gr = grid_complete(pos[sel, :2], vals[sel], L, n, sigma, f"strain plane {int(p)}")
        crys[ip], glob[ip], rot[ip] = np.moveaxis(gr[..., :3], -1, 0), np.moveaxis(gr[..., 3:6], -1, 0), gr[..., 6]
        for ic in range(4):
            fg = glob[ip, ic] if ic < 3 else rot[ip]
            coef[ip, ic] = fourier_fit(fg, Nsc)
            coef_c[ip, ic] = fourier_fit(crys[ip, ic] if ic < 3 else rot[ip], Nsc)
            resid[ip, ic] = float(np.sqrt(np.mean((fg - fourier_grid(coef[ip, ic], L, n)) ** 2)))
            va = vals[sel, 3 + ic]
            ok = np.isfinite(va)
            resid_atoms[ip, ic] = float(np.sqrt(np.mean((va[ok] - fourier_eval(coef[ip, ic], pos[sel, 0][ok],
                                                                              pos[sel, 1][ok], L)) ** 2)))
        bsel = sel & isb & ~changed
        if bsel.any():
            off[ip] = grid_periodic(pos[bsel, :2], oc.delta[bsel], L, n, sigma)

    # network: period of the crystal-frame eps_xy (per plane, and the two interface planes together)
    # and of the interlayer twist map
    period = np.full(npl, np.nan)
    period_hk = np.zeros((npl, 2), int)
    for ip in range(npl):
        period[ip], period_hk[ip] = _period(crys[ip, 2], L, Nsc, FLAT_STRAIN)
    iib, iit = int(np.flatnonzero(planes == ib)[0]), int(np.flatnonzero(planes == it)[0])
    twist = interlayer_twist_deg(theta, rot[iit], rot[iib])
    per_exy, hk_exy = _period(crys[[iib, iit], 2], L, Nsc, FLAT_STRAIN)
    per_tw, hk_tw = _period(twist, L, Nsc, FLAT_TWIST_DEG)

    dz = pos[:, 2] - rigid.positions[:, 2]
    max_dz = np.array([np.abs(dz[plane == p]).max() for p in planes])
    max_dz_rel = np.array([np.abs(dz[plane == p] - dz[plane == p].mean()).max() for p in planes])
    plane_layer = np.array([layer[plane == p][0] for p in planes])
    plane_angle = angles[plane_layer]

    coords = {
        "plane": ("plane", planes, {"units": "1", "description": "global plane index, bottom to top (every plane)"}),
        "plane_layer": ("plane", plane_layer, {"units": "1", "description": "0 bottom, 1 top"}),
        "plane_z": ("plane", np.array([pos[plane == p, 2].mean() for p in planes]),
                    {"units": "Å", "description": "mean z of the relaxed plane"}),
        "plane_kind": ("plane", np.array([kinds[plane == p][0] for p in planes]), {"units": "1", "description": "0 AO, 1 BO2"}),
        "plane_angle_deg": ("plane", plane_angle, {"units": "deg",
                                                   "description": "angle of the plane's layer [100] from global x (CCW)"}),
        "y": ("y", g, {"units": "Å"}), "x": ("x", g, {"units": "Å"}),
        "xy": ("xy", ["x", "y"]), "xy2": ("xy2", ["x", "y"]),
        "component": ("component", TENSOR, {"description": "tensor component of eps_global (tensor shear xy)"}),
        "field": ("field", FIELDS),
        "h": ("h", np.arange(-Nsc, Nsc + 1), {"units": "1", "description": "supercell harmonic along x"}),
        "k": ("k", np.arange(-Nsc, Nsc + 1), {"units": "1", "description": "supercell harmonic along y"}),
        "atom": ("atom", np.arange(len(atoms))),
        "xyz": ("xyz", ["x", "y", "z"]),
        "cn": ("cn", np.arange(9), {"units": "1"}),
        "all_planes": ("all_planes", planes, {"units": "1"}),
    }
    dims = ("plane", "y", "x")
    desc = "U - I of the polar decomposition F = R U (rigid rotation removed), crystal frame of the plane's own layer"
    fdesc = "f(x, y) = sum c[h, k] exp(2 pi i (h x + k y) / L); |h|, |k| <= fourier_order_supercell"
    data = {
        "eps_xx": (dims, crys[:, 0], {"units": "1", "frame": "crystal (plane's layer)", "description": desc}),
        "eps_yy": (dims, crys[:, 1], {"units": "1", "frame": "crystal (plane's layer)", "description": desc}),
        "eps_xy": (dims, crys[:, 2], {"units": "1", "frame": "crystal (plane's layer)",
                                      "description": desc + "; tensor shear (engineering = 2x)"}),
        "eps_global": (("component",) + dims, np.moveaxis(glob, 1, 0),
                       {"units": "1", "frame": "global (supercell)", "description": "the same strain in the supercell frame"}),
        "rotation": (dims, rot, {"units": "rad", "description": "local rotation beyond the layer's own angle, CCW about +z"}),
        "interlayer_twist": (("y", "x"), twist, {"units": "deg", "description":
                             "theta + rotation(top interface plane) - rotation(bottom interface plane): local twist"}),
        "ti_offcentering": (dims + ("xy",), off, {"units": "Å", "frame": "global", "description":
                            "B-site r_B - centroid of the rigid cage's 4 equatorial X; changed cages left out; NaN on AO planes"}),
        "polarization": (dims + ("xy",), polarization_from_offcentring(off, cfg["born_charge"], a),
                         {"units": "C/m^2", "frame": "global", "description": "Z* e delta / a^3, changed cages left out"}),
        "fourier_coefficients": (("plane", "field", "h", "k"), coef,
                                 {"units": "1 (eps), rad (rotation)", "frame": "global (supercell), as eps_global",
                                  "description": fdesc}),
        "fourier_coefficients_crystal": (("plane", "field", "h", "k"), coef_c,
                                         {"units": "1 (eps), rad (rotation)", "frame": "crystal (plane's layer)",
                                          "description": fdesc}),
        "fourier_residual": (("plane", "field"), resid, {"units": "1 (eps), rad (rotation)",
                                                             "description": "rms of grid - series (global frame)"}),
        "fourier_residual_atoms": (("plane", "field"), resid_atoms, {"units": "1 (eps), rad (rotation)",
                                   "description": "rms of per-atom value - series at the atom (global frame)"}),
        "polarization_masked_cells": ("plane", np.array([int(np.isnan(off[ip, ..., 0]).sum()) if (isb & (plane == p)).any()
                                                         else 0 for ip, p in enumerate(planes)]),
                                      {"units": "1", "description": "NaN grid cells of polarization on planes with B sites "
                                       "(holes left by changed cages); planes without B sites are NaN throughout"}),
        "network_period": ("plane", period, {"units": "Å", "description": "wavelength of the strongest crystal eps_xy harmonic"}),
        "network_harmonic": (("plane", "xy"), period_hk, {"units": "1"}),
        "atoms_without_strain": ("plane", count_per_plane(no_strain, plane, planes),
                                 {"units": "1", "description": "atoms with < 2 independent neighbours, left out of the grids"}),
        "atom_plane": ("atom", plane.astype(np.int32), {"units": "1"}),
        "atom_layer": ("atom", layer.astype(np.int32), {"units": "1"}),
        "atom_positions": (("atom", "xyz"), pos, {"units": "Å", "description": "relaxed positions the fields refer to"}),
        "atom_eps": (("atom", "xy", "xy2"), eps_c, {"units": "1", "frame": "crystal (atom's layer)"}),
        "atom_eps_global": (("atom", "xy", "xy2"), sr.eps, {"units": "1", "frame": "global (supercell)"}),
        "atom_rotation": ("atom", sr.rotation, {"units": "rad"}),
        "atom_neighbours": ("atom", sr.n_neighbours.astype(np.int32), {"units": "1"}),
        "atom_ti_offcentering": (("atom", "xy"), oc.delta, {"units": "Å", "frame": "global",
                                 "description": "against the rigid cage, every B site (also changed cages)"}),
        "atom_polarization": (("atom", "xy"), P_atom, {"units": "C/m^2", "frame": "global",
                              "description": "NaN for changed cages and non-B atoms"}),
        "ti_coordination": ("atom", oc.coordination.astype(np.int32),
                            {"units": "1", "description": "X within bo_cutoff (any plane); -1 not a B site"}),
        "cage_changed": ("atom", oc.cage_changed, {"units": "1", "description": "1 changed cage, 0 intact, -1 not a B site"}),
        "cage_flags": ("atom", oc.cage_flags.astype(np.int32), {"units": "1", "description":
                       f"bitmask: {CAGE_BROKEN} cage X beyond bo_cutoff, {CAGE_EXTRA} extra equatorial X within "
                       f"bo_cutoff, {CAGE_MOVED} cage X moved > a/4; -1 not a B site"}),
        "ti_cn_counts": (("all_planes", "cn"), coordination_counts(oc.coordination, plane, planes),
                         {"units": "1", "description": "number of B sites with each coordination number, per plane"}),
        "cage_changed_count": ("all_planes", count_per_plane(changed, plane, planes),
                               {"units": "1", "description": "B sites whose rigid cage changed, per plane"}),
        "max_dz": ("all_planes", max_dz, {"units": "Å", "description": "largest |z - z_rigid| in the plane"}),
        "max_dz_relative": ("all_planes", max_dz_rel, {"units": "Å", "description":
                            "largest |dz - mean dz of the plane|: out-of-plane motion beyond the plane's own shift"}),
    }
    unc = block_offcentring(relaxed, atoms, cages, isb & ~changed, planes, L, n, sigma)
    if unc is not None:
        se_atom, se_grid, nb = unc
        data["atom_ti_offcentering_stderr"] = (("atom", "xy"), se_atom, {"units": "Å", "description":
                                               f"standard error of the mean from {nb} MD blocks"})
        data["ti_offcentering_uncertainty"] = (dims + ("xy",), se_grid, {"units": "Å", "description":
                                               f"standard error of the gridded mean from {nb} MD blocks"})
        data["polarization_uncertainty"] = (dims + ("xy",), polarization_from_offcentring(se_grid, cfg["born_charge"], a),
                                            {"units": "C/m^2", "description": f"standard error from {nb} MD blocks"})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({k: relaxed.attrs[k] for k in _STRUCT_ATTRS if k in relaxed.attrs})
    ok = np.isfinite(resid)
    ds.attrs.update(
        strain_frame="eps_xx, eps_yy, eps_xy: crystal frame of the plane's own layer; eps_global, fourier_coefficients: "
                     "global (supercell) frame",
        fourier_order=Nsc, fourier_order_moire=N, fourier_order_supercell=Nsc,
        moire_harmonics=moire_harmonics(angles, a, L).tolist(),
        fourier_residual_rms=float(np.sqrt(np.mean(resid[ok] ** 2))) if ok.any() else float("nan"),
        born_charge=float(cfg["born_charge"]), b_site_number=b_num, x_site_number=x_num,
        network_period_over_moire=[float(p / lam) for p in period],
        network_period_eps_xy=per_exy, network_harmonic_eps_xy=list(hk_exy),
        network_period_twist=per_tw, network_harmonic_twist=list(hk_tw),
        cage_changed_total=int(changed.sum()), b_sites=int(isb.sum()),
        polarization_excluded="B sites with cage_changed = 1 are NaN in atom_polarization and left out of the grids",
        atoms_without_strain_total=int(no_strain.sum()),
        a_reference=a, a_reference_source="2 x the B-X distance of the rigid lattice (positions_rigid)",
        md_blocks=unc[2] if unc is not None else 0,
        polarization_uncertainty_source=("standard error over relaxed.zarr positions_blocks (MD block averages)"
                                         if unc is not None else "none: relaxed.zarr has no positions_blocks"),
    )
    return ds
