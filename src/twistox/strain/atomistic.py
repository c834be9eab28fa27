"""Per-atom fields of a relaxed twisted perovskite bilayer.

- In-plane deformation gradient F (2x2) of every atom from its same-plane neighbour
  vectors d against the ideal vectors d0 of its own layer's lattice, rotated by
  ``layer_angles_deg[layer]``: least squares d ~ F d0 (the per-atom strain of OVITO's
  atomic-strain analysis, with the ideal lattice as reference). Polar decomposition
  F = R U removes the rigid rotation; strain eps = U - I (dimensionless, tensor shear
  eps_xy), local rotation = angle of R (rad, counter-clockwise about +z, on top of the
  layer's twist).
- Ti (B-site) off-centring delta = r_B - centroid of its same-plane O (Å), polarisation
  P = Z*_B e delta / a^3 (C/m^2), coordination number = O within a cutoff (both layers).

All in-plane perovskite vectors (A-X, B-X, X-X, A-A, B-B) are multiples of a/2 along the
layer's cube axes, so an observed vector is matched to its ideal one by rounding in the
layer frame; this holds while local distortions stay below a/4 (~1 Å).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list


E_CHARGE = 1.602176634e-19  # C
ANGSTROM = 1e-10  # m


@dataclass
class StrainResult:
    """Per-atom in-plane fields; NaN where an atom had fewer than two independent neighbours."""

    F: np.ndarray  # (N, 2, 2) deformation gradient
    eps: np.ndarray  # (N, 2, 2) strain U - I
    rotation: np.ndarray  # (N,) rad
    n_neighbours: np.ndarray  # (N,)


def ideal_vectors(d: np.ndarray, angle_deg: np.ndarray, a: float) -> np.ndarray:
    """Nearest ideal in-plane lattice vectors (multiples of a/2 in the layer frame), Å."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    # rotate into the layer frame, round to the a/2 grid, rotate back
    u = c * d[:, 0] + s * d[:, 1]
    w = -s * d[:, 0] + c * d[:, 1]
    h = a / 2.0
    u, w = np.round(u / h) * h, np.round(w / h) * h
    return np.stack([c * u - s * w, s * u + c * w], axis=1)


def deformation_gradient(atoms: Atoms, layer_angles_deg, a: float, cutoff: float) -> StrainResult:
    """Per-atom 2x2 F, strain and local rotation from same-plane neighbours within ``cutoff`` Å.

    ``atoms`` needs arrays ``layer`` and ``plane``; pbc in x and y.
    """
    i, j, D = neighbor_list("ijD", atoms, cutoff)
    plane = atoms.arrays["plane"]
    layer = atoms.arrays["layer"]
    keep = plane[i] == plane[j]
    i, j, D = i[keep], j[keep], D[keep]
    d = D[:, :2]
    d0 = ideal_vectors(d, np.asarray(layer_angles_deg, float)[layer[i]], a)
    n = len(atoms)
    A = np.zeros((n, 2, 2))  # sum d d0^T
    M = np.zeros((n, 2, 2))  # sum d0 d0^T
    np.add.at(A, i, d[:, :, None] * d0[:, None, :])
    np.add.at(M, i, d0[:, :, None] * d0[:, None, :])
    nn = np.bincount(i, minlength=n)
    det = np.linalg.det(M)
    ok = det > 1e-8 * a**4
    F = np.full((n, 2, 2), np.nan)
    F[ok] = A[ok] @ np.linalg.inv(M[ok])
    rot, U = polar_2d(F)
    eps = U - np.eye(2)
    return StrainResult(F=F, eps=eps, rotation=rot, n_neighbours=nn)


def polar_2d(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar decomposition F = R(phi) U of 2x2 matrices (..., 2, 2): returns phi (rad) and U."""
    phi = np.arctan2(F[..., 1, 0] - F[..., 0, 1], F[..., 0, 0] + F[..., 1, 1])
    c, s = np.cos(phi), np.sin(phi)
    Rt = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)  # R^T
    U = Rt @ F
    return phi, 0.5 * (U + np.swapaxes(U, -1, -2))


@dataclass
class OffcentringResult:
    """Per-B-site off-centring (NaN rows for non-B atoms)."""

    delta: np.ndarray  # (N, 2) Å, in-plane r_B - centroid(same-plane O)
    n_equatorial: np.ndarray  # (N,) same-plane O neighbours used (-1 for non-B atoms)
    coordination: np.ndarray  # (N,) O within the cutoff in any plane (-1 for non-B atoms)


def b_site_offcentring(atoms: Atoms, b_number: int, x_number: int, cutoff: float) -> OffcentringResult:
    """In-plane off-centring of B sites against their same-plane X (O) neighbours, and CN.

    Only same-plane (equatorial) O enter the centroid: the apical O count differs at the
    interface (CN 5 vs 6), and an apical O of the other, twisted layer would bias the
    in-plane centroid. CN counts every O within ``cutoff`` Å (both layers).
    """
    n = len(atoms)
    num = atoms.numbers
    plane = atoms.arrays["plane"]
    i, j, D = neighbor_list("ijD", atoms, cutoff)
    bo = (num[i] == b_number) & (num[j] == x_number)
    i, j, D = i[bo], j[bo], D[bo]
    cn = np.full(n, -1)
    isb = num == b_number
    cn[isb] = np.bincount(i, minlength=n)[isb]
    eq = plane[i] == plane[j]
    cnt = np.bincount(i[eq], minlength=n)
    s = np.zeros((n, 2))
    np.add.at(s, i[eq], D[eq, :2])
    delta = np.full((n, 2), np.nan)
    good = isb & (cnt > 0)
    delta[good] = -s[good] / cnt[good, None]  # r_B - centroid = -mean(r_O - r_B)
    neq = np.where(isb, cnt, -1)
    return OffcentringResult(delta=delta, n_equatorial=neq, coordination=cn)


def polarization_from_offcentring(delta: np.ndarray, born_charge: float, a: float) -> np.ndarray:
    """P = Z* e delta / a^3 in C/m^2 (delta and a in Å)."""
    return born_charge * E_CHARGE * np.asarray(delta) * ANGSTROM / (a * ANGSTROM) ** 3


def coordination_counts(coordination: np.ndarray, plane: np.ndarray, planes: np.ndarray, max_cn: int = 8) -> np.ndarray:
    """Counts of B sites per (plane, CN = 0..max_cn); atoms with CN -1 (not B) are skipped."""
    out = np.zeros((len(planes), max_cn + 1), dtype=np.int64)
    for k, p in enumerate(planes):
        c = coordination[(plane == p) & (coordination >= 0)]
        out[k] = np.bincount(np.minimum(c, max_cn), minlength=max_cn + 1)
    return out


# ----------------------------------------------------------------------------- stage driver

COMPONENTS = ["eps_xx", "eps_yy", "eps_xy", "rotation"]


def check_settings(cfg: dict, L: float) -> None:
    """Semantic checks of config['strain'] against the supercell (raise ValueError)."""
    from twistox.strain.fourier import grid_size

    n = grid_size(L, cfg["grid_spacing"])
    if n <= 2 * cfg["fourier_order"]:
        raise ValueError(f"strain.grid_spacing: {cfg['grid_spacing']} Å gives {n} points on L = {L:.2f} Å, too few for "
                         f"strain.fourier_order = {cfg['fourier_order']}; allowed: grid_spacing < {L / (2 * cfg['fourier_order'] + 1):.3f} Å")


def strain_dataset(relaxed, cfg: dict):
    """strain.zarr contents from a relaxed.zarr Dataset (docs/architecture.md contract).

    Per-atom fields (dim atom), fields gridded on the selected planes (plane, y, x), the
    truncated Fourier coefficients (plane, component, h, k), the measured network period.
    """
    import xarray as xr

    from twistox.strain.fourier import dominant_period, fourier_eval, fourier_fit, fourier_grid, grid_coords, grid_periodic, grid_size
    from twistox.core.io import atoms_from_dataset

    atoms = atoms_from_dataset(relaxed)
    info = atoms.info
    a = float(info["a"])
    L = float(info["supercell_length"])
    check_settings(cfg, L)
    angles = np.asarray(info["layer_angles_deg"], float)
    plane = atoms.arrays["plane"]
    layer = atoms.arrays["layer"]
    kinds = atoms.arrays["plane_kind"]
    sr = deformation_gradient(atoms, angles, a, cfg["neighbour_cutoff"] * a)
    # B site = the species of the BO2 planes that is not O
    x_num = 8
    bo2 = atoms.numbers[(kinds == 1) & (atoms.numbers != x_num)]
    b_num = int(np.bincount(bo2).argmax()) if len(bo2) else 22
    oc = b_site_offcentring(atoms, b_num, x_num, cfg["bo_cutoff"])
    P_atom = polarization_from_offcentring(oc.delta, cfg["born_charge"], a)
    all_planes = np.unique(plane)
    planes = np.asarray(info["interface_planes"] if cfg["planes"] == "interface" else all_planes, int)
    n = grid_size(L, cfg["grid_spacing"])
    g = grid_coords(L, n)
    N = int(cfg["fourier_order"])
    sigma = float(cfg["smoothing_sigma"])
    per_atom = {"eps_xx": sr.eps[:, 0, 0], "eps_yy": sr.eps[:, 1, 1], "eps_xy": sr.eps[:, 0, 1], "rotation": sr.rotation}
    grids = {c: np.full((len(planes), n, n), np.nan) for c in COMPONENTS}
    off = np.full((len(planes), n, n, 2), np.nan)
    coef = np.zeros((len(planes), len(COMPONENTS), 2 * N + 1, 2 * N + 1), complex)
    resid = np.full((len(planes), len(COMPONENTS)), np.nan)
    resid_atoms = np.full((len(planes), len(COMPONENTS)), np.nan)
    period = np.full(len(planes), np.nan)
    period_hk = np.zeros((len(planes), 2), int)
    pos = atoms.positions
    for ip, p in enumerate(planes):
        sel = plane == p
        for ic, c in enumerate(COMPONENTS):
            grids[c][ip] = grid_periodic(pos[sel, :2], per_atom[c][sel], L, n, sigma)
            if np.isnan(grids[c][ip]).any():
                continue
            coef[ip, ic] = fourier_fit(grids[c][ip], N)
            rec = fourier_grid(coef[ip, ic], L, n)
            resid[ip, ic] = float(np.sqrt(np.mean((grids[c][ip] - rec) ** 2)))
            va = per_atom[c][sel]
            ok = np.isfinite(va)
            resid_atoms[ip, ic] = float(np.sqrt(np.mean((va[ok] - fourier_eval(coef[ip, ic], pos[sel, 0][ok], pos[sel, 1][ok], L)) ** 2)))
        bsel = sel & (atoms.numbers == b_num)
        if bsel.any():
            off[ip] = grid_periodic(pos[bsel, :2], oc.delta[bsel], L, n, sigma)
        if np.isfinite(grids["eps_xy"][ip]).all():
            period[ip], hk = dominant_period(grids["eps_xy"][ip], L, max_order=N)
            period_hk[ip] = hk
    plane_z = np.array([pos[plane == p, 2].mean() for p in planes])
    coords = {
        "plane": ("plane", planes, {"units": "1", "description": "global plane index, bottom to top"}),
        "plane_layer": ("plane", np.array([layer[plane == p][0] for p in planes]), {"units": "1"}),
        "plane_z": ("plane", plane_z, {"units": "Å", "description": "mean z of the relaxed plane"}),
        "plane_kind": ("plane", np.array([kinds[plane == p][0] for p in planes]), {"units": "1", "description": "0 AO, 1 BO2"}),
        "y": ("y", g, {"units": "Å"}), "x": ("x", g, {"units": "Å"}),
        "xy": ("xy", ["x", "y"]),
        "component": ("component", COMPONENTS),
        "h": ("h", np.arange(-N, N + 1), {"units": "1", "description": "harmonic along x"}),
        "k": ("k", np.arange(-N, N + 1), {"units": "1", "description": "harmonic along y"}),
        "atom": ("atom", np.arange(len(atoms))),
        "xyz": ("xyz", ["x", "y", "z"]),
        "cn": ("cn", np.arange(9), {"units": "1"}),
        "all_planes": ("all_planes", all_planes, {"units": "1"}),
    }
    dims = ("plane", "y", "x")
    strain_desc = "U - I from the polar decomposition F = R U (tensor component, rigid rotation removed)"
    data = {
        "eps_xx": (dims, grids["eps_xx"], {"units": "1", "description": strain_desc}),
        "eps_yy": (dims, grids["eps_yy"], {"units": "1", "description": strain_desc}),
        "eps_xy": (dims, grids["eps_xy"], {"units": "1", "description": strain_desc + "; tensor shear (engineering = 2x)"}),
        "rotation": (dims, grids["rotation"], {"units": "rad", "description": "local rotation beyond the layer twist, CCW about +z"}),
        "ti_offcentering": (dims + ("xy",), off, {"units": "Å", "description": "B-site in-plane off-centring vs same-plane O centroid"}),
        "polarization": (dims + ("xy",), polarization_from_offcentring(off, cfg["born_charge"], a),
                         {"units": "C/m^2", "description": "Z* e delta / a^3"}),
        "fourier_coefficients": (("plane", "component", "h", "k"), coef,
                                 {"units": "1 (eps), rad (rotation)",
                                  "description": "f(x, y) = sum c[h, k] exp(2 pi i (h x + k y) / L)"}),
        "fourier_residual": (("plane", "component"), resid, {"units": "1 (eps), rad (rotation)", "description": "rms of grid - series"}),
        "fourier_residual_atoms": (("plane", "component"), resid_atoms,
                                   {"units": "1 (eps), rad (rotation)", "description": "rms of per-atom value - series at the atom"}),
        "network_period": ("plane", period, {"units": "Å", "description": "wavelength of the strongest eps_xy harmonic"}),
        "network_harmonic": (("plane", "xy"), period_hk, {"units": "1"}),
        "atom_plane": ("atom", plane.astype(np.int32), {"units": "1"}),
        "atom_positions": (("atom", "xyz"), pos, {"units": "Å", "description": "relaxed positions the fields refer to"}),
        "atom_eps": (("atom", "xy", "xy2"), sr.eps, {"units": "1"}),
        "atom_rotation": ("atom", sr.rotation, {"units": "rad"}),
        "atom_neighbours": ("atom", sr.n_neighbours.astype(np.int32), {"units": "1"}),
        "atom_ti_offcentering": (("atom", "xy"), oc.delta, {"units": "Å"}),
        "atom_polarization": (("atom", "xy"), P_atom, {"units": "C/m^2"}),
        "ti_coordination": ("atom", oc.coordination.astype(np.int32), {"units": "1", "description": "O within bo_cutoff; -1 not a B site"}),
        "ti_cn_counts": (("all_planes", "cn"), coordination_counts(oc.coordination, plane, all_planes),
                         {"units": "1", "description": "number of B sites with each coordination number, per plane"}),
    }
    ds = xr.Dataset(data, coords=coords)
    ds = ds.assign_coords(xy2=("xy2", ["x", "y"]))
    lam = float(info.get("moire_period", np.nan))
    ds.attrs.update({k: relaxed.attrs[k] for k in ("m", "n", "sigma", "theta_deg", "theta_requested_deg", "a",
                                                   "moire_period", "supercell_length", "interface_planes",
                                                   "interface_z", "layer_angles_deg", "frame_angle_deg") if k in relaxed.attrs})
    ok = np.isfinite(resid)
    ds.attrs.update(fourier_order=N, fourier_residual_rms=float(np.sqrt(np.mean(resid[ok] ** 2))) if ok.any() else float("nan"),
                    born_charge=float(cfg["born_charge"]), b_site_number=b_num,
                    network_period_over_moire=[float(p / lam) for p in period])
    return ds


def plot_interface_fields(ds, path, tiles: int = 2) -> None:
    """Paper Fig. 2c,d-like panels on the interfacial BO2 plane: eps_xy, rotation, off-centring vectors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = ds["plane_kind"].values
    ip = int(np.flatnonzero(kinds == 1)[0]) if (kinds == 1).any() else 0
    d = ds.isel(plane=ip)
    L = float(ds.attrs["supercell_length"])
    ext = [0, tiles * L, 0, tiles * L]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.0), layout="constrained")
    exy = np.tile(d["eps_xy"].values, (tiles, tiles)) * 100
    vm = np.nanmax(np.abs(exy)) or 1.0
    im = axes[0].imshow(exy, origin="lower", extent=ext, cmap="RdBu_r", vmin=-vm, vmax=vm)
    fig.colorbar(im, ax=axes[0], label="ε_xy (%)")
    rot = np.degrees(np.tile(d["rotation"].values, (tiles, tiles)))
    vr = np.nanmax(np.abs(rot)) or 1.0
    im = axes[1].imshow(rot, origin="lower", extent=ext, cmap="PuOr", vmin=-vr, vmax=vr)
    fig.colorbar(im, ax=axes[1], label="local rotation (deg)")
    mag = np.tile(np.hypot(*np.moveaxis(d["ti_offcentering"].values, -1, 0)), (tiles, tiles)) * 100
    im = axes[2].imshow(mag, origin="lower", extent=ext, cmap="magma")
    fig.colorbar(im, ax=axes[2], label="|δ_Ti| (pm)")
    # per-atom off-centring arrows on the B sites of this plane, over every tile
    sel = (ds["atom_plane"].values == int(d["plane"])) & (ds["ti_coordination"].values >= 0)
    if sel.any():
        xy = ds["atom_positions"].values[sel, :2]
        dv = ds["atom_ti_offcentering"].values[sel]
        txy = np.concatenate([xy + L * np.array([i, j]) for i in range(tiles) for j in range(tiles)])
        tdv = np.tile(dv, (tiles * tiles, 1))
        scale = np.nanmax(np.hypot(tdv[:, 0], tdv[:, 1])) or 1.0
        axes[2].quiver(txy[:, 0], txy[:, 1], tdv[:, 0], tdv[:, 1], color="cyan", angles="xy",
                       scale_units="xy", scale=scale / (0.35 * float(ds.attrs.get("a", 3.9))), width=0.004)
        axes[2].set_title(f"B-site off-centring (arrows ∝ δ, max {100 * scale:.2f} pm)", fontsize=10)
    axes[0].set_title("shear strain ε_xy", fontsize=10)
    axes[1].set_title("local rotation (twist removed)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        ax.plot([0, L, L, 0, 0], [0, 0, L, L, 0], "k-", lw=0.8)
    lam = ds.attrs.get("moire_period", float("nan"))
    per = float(d["network_period"])
    fig.suptitle(f"interfacial BO2 plane {int(d['plane'])}: θ = {ds.attrs.get('theta_deg', 0):.2f}°, "
                 f"λ = {lam:.2f} Å, strongest ε_xy period {per:.2f} Å")
    from twistox.core.plots import save

    save(fig, path)


def plot_fourier_fit(ds, path) -> None:
    """Gridded interface fields next to their truncated Fourier series, with the residual."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twistox.strain.fourier import fourier_grid

    L = float(ds.attrs["supercell_length"])
    n = ds.sizes["x"]
    planes = ds["plane"].values
    fig, axes = plt.subplots(len(planes), 3, figsize=(13, 4.0 * len(planes)), squeeze=False, layout="constrained")
    for r, p in enumerate(planes):
        d = ds.sel(plane=p)
        f = d["eps_xy"].values * 100
        rec = fourier_grid(d["fourier_coefficients"].sel(component="eps_xy").values, L, n) * 100
        vm = np.nanmax(np.abs(f)) or 1.0
        for c, (img, title) in enumerate(((f, "gridded ε_xy (%)"), (rec, f"Fourier N = {ds.attrs['fourier_order']} (%)"),
                                          (f - rec, "residual (%)"))):
            im = axes[r, c].imshow(img, origin="lower", extent=[0, L, 0, L], cmap="RdBu_r", vmin=-vm, vmax=vm)
            fig.colorbar(im, ax=axes[r, c])
            kind = "BO2" if int(d["plane_kind"]) == 1 else "AO"
            axes[r, c].set_title(f"plane {int(p)} ({kind}): {title}", fontsize=9)
            axes[r, c].set_xlabel("x (Å)")
            axes[r, c].set_ylabel("y (Å)")
    from twistox.core.plots import save

    save(fig, path)
