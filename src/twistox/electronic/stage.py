"""Stage `electronic`: relaxed.zarr + strain.zarr -> electronic.zarr (issue 18, the paper's Fig. 4j).

GPAW LCAO (+U on Ti d) of the relaxed structure; total DOS, PDOS per atom group (interface regions from
the strain stage's network: domain / line / node, then interface_near and bulk_like planes) and per
(element, l) channel, band edges and their character, the in-plane LDOS map of the states in
[E_v − window, E_v] gridded like strain.zarr (x, y), the region masks, and the network enrichment:
``ldos_fraction_lines`` / ``area_fraction_lines`` (and nodes). The cost estimate is checked against
``max_memory_gb`` before the SCF starts.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import xarray as xr

from twistox.core.config import ConfigError, with_schema_defaults
from twistox.electronic import dos as D
from twistox.electronic import regions as R
from twistox.electronic.calculation import kpoint_grid, run_lcao
from twistox.electronic.estimate import describe, estimate


def check_settings(cfg: dict | None) -> dict:
    """The validated `electronic` section with the schema's defaults; ConfigError naming the key."""
    s = with_schema_defaults("electronic", cfg)
    if not 0.0 < s["regions"]["line_level"] < s["regions"]["node_level"] < 1.0:
        raise ConfigError("config key 'electronic.regions': need 0 < line_level < node_level < 1, got "
                          f"{s['regions']['line_level']}, {s['regions']['node_level']}")
    return s


def check_resources(atoms, s: dict, threads: int) -> dict:
    """Cost estimate; ConfigError (with the estimate) when it exceeds ``electronic.max_memory_gb``."""
    kpts = kpoint_grid(atoms, float(s["kpt_density"]))
    est = estimate(atoms.get_chemical_symbols(), atoms.cell.array, kpts, float(s["h"]), s["basis"],
                   gamma_only=kpts == (1, 1, 1), threads=threads)
    if est["memory_gb"] > float(s["max_memory_gb"]):
        raise ConfigError(f"config key 'electronic.max_memory_gb' ({s['max_memory_gb']} GB): the LCAO "
                          f"calculation needs more: {describe(est)}. Give more memory (a cluster: see "
                          "docs/stages/electronic.md), a coarser electronic.h or a smaller kpt_density.")
    return est


def compute(atoms, s: dict, groups: np.ndarray, code: np.ndarray, found: bool, x: np.ndarray, y: np.ndarray,
            z_range: tuple[float, float] | None, threads: int = 1, checkpoint_dir: str | os.PathLike | None = None,
            txt: str | None = None, log: logging.Logger | None = None) -> xr.Dataset:
    """The electronic dataset of ``atoms`` with atom ``groups`` (codes of ``R.GROUPS``) and the in-plane
    region ``code`` [y, x] on the grid x, y (Å)."""
    log = log or logging.getLogger(__name__)
    est = check_resources(atoms, s, threads)
    log.info("electronic: estimate %s", describe(est))
    raw = run_lcao(atoms, s, groups, len(R.GROUPS), z_range, checkpoint_dir=checkpoint_dir, txt=txt, log=log)
    edges = D.band_edges(raw.eigenvalues, raw.n_electrons)
    vbm = edges["vbm"]
    d = s["dos"]
    energy = np.arange(d["emin_eV"], d["emax_eV"] + 0.5 * d["step_eV"], d["step_eV"])
    eps = raw.eigenvalues - vbm
    total = D.gaussian_dos(eps, raw.k_weights, energy, d["sigma_eV"])
    pdos = D.gaussian_dos(eps, raw.k_weights, energy, d["sigma_eV"], raw.group_weights)
    pch = D.gaussian_dos(eps, raw.k_weights, energy, d["sigma_eV"], raw.channel_weights)
    win = float(s["ldos_window_eV"])
    L = (float(atoms.cell[0, 0]), float(atoms.cell[1, 1]))
    ldos = D.to_grid(raw.ldos_map, raw.ldos_x, raw.ldos_y, x, y, L)
    frac = R.network_fractions(ldos, code, found)
    ds = xr.Dataset(
        {
            "dos_total": ("energy", total, {"units": "states/eV per cell", "description": "spin-summed, Gaussian sigma"}),
            "pdos_group": (("group", "energy"), pdos, {"units": "states/eV per cell", "description": "Mulliken PDOS per atom group"}),
            "pdos_channel": (("channel", "energy"), pch, {"units": "states/eV per cell", "description": "Mulliken PDOS per element and l"}),
            "vbm_character": ("channel", D.edge_character(eps, raw.k_weights, raw.channel_weights, 0.0), {"units": "1"}),
            "cbm_character": ("channel", D.edge_character(eps, raw.k_weights, raw.channel_weights, edges["gap"]), {"units": "1"}),
            "window_group_fraction": ("group", D.window_fraction(eps, raw.k_weights, raw.group_weights, 0.0, win),
                                      {"units": "1", "description": "Mulliken share of the window states per group"}),
            "ldos_window": (("y", "x"), ldos, {"units": "electrons/Å^2", "description":
                            f"pseudo-density of the states in [E_v - {win} eV, E_v], integrated over z"}),
            "region": (("y", "x"), code, {"description": "0 domain, 1 line, 2 node (from interlayer_twist)"}),
            "mask_lines": (("y", "x"), code == 1), "mask_nodes": (("y", "x"), code == 2),
            "mask_domains": (("y", "x"), code == 0),
            "atom_group": ("atom", groups.astype(np.int8), {"description": "index into attrs groups"}),
            "group_atoms": ("group", np.bincount(groups, minlength=len(R.GROUPS))),
            "eigenvalues": (("kpoint", "band"), raw.eigenvalues, {"units": "eV", "description": "absolute, GPAW"}),
            "k_weights": ("kpoint", raw.k_weights),
        },
        coords={"energy": ("energy", energy, {"units": "eV", "description": "E - E_v"}),
                "group": list(R.GROUPS), "channel": list(raw.channels), "x": ("x", x, {"units": "Å"}),
                "y": ("y", y, {"units": "Å"})},
    )
    ds.attrs.update({**{k: float(v) for k, v in frac.items()},
                     "vbm_eV": vbm, "cbm_eV": edges["cbm"], "gap_eV": edges["gap"], "fermi_level_eV": raw.fermi_level,
                     "n_electrons": raw.n_electrons, "integrated_dos_to_midgap": D.electrons_below(eps, raw.k_weights, 0.5 * edges["gap"], d["sigma_eV"]),
                     "ldos_window_eV": win, "ldos_z_range": list(z_range) if z_range else "all",
                     "network_found": int(found), "groups": list(R.GROUPS),
                     "kpts": list(kpoint_grid(atoms, float(s["kpt_density"]))), "hubbard_u": dict(s["hubbard_u"]),
                     "xc": s["xc"], "basis": s["basis"], "h": float(s["h"]), "scf_iterations": raw.scf_iterations,
                     "scf_wall_s": raw.wall_s, "scf_max_rss_mb": raw.max_rss_mb, "from_checkpoint": int(raw.from_checkpoint),
                     **{f"estimate_{k}": v for k, v in est.items()}})
    log.info("electronic: gap %.3f eV; window LDOS on lines %.3f (area %.3f), nodes %.3f (area %.3f)",
             edges["gap"], frac["ldos_fraction_lines"], frac["area_fraction_lines"], frac["ldos_fraction_nodes"],
             frac["area_fraction_nodes"])
    return ds


def run(relaxed: xr.Dataset, strain: xr.Dataset, cfg: dict | None, threads: int = 1,
        checkpoint_dir: str | os.PathLike | None = None, txt: str | None = None,
        log: logging.Logger | None = None) -> xr.Dataset:
    """Rule entry: regions from strain.zarr's network, then :func:`compute` on the relaxed positions."""
    from twistox.core.io import atoms_from_dataset

    s = check_settings(cfg)
    atoms = atoms_from_dataset(relaxed)
    r = s["regions"]
    L = float(strain.attrs["supercell_length"])
    x, y = strain["x"].values, strain["y"].values
    code, _, found = R.region_map(strain["interlayer_twist"].values, L, float(strain.attrs["moire_period"]),
                                  harmonics=r["harmonics"], line_level=r["line_level"], node_level=r["node_level"])
    plane = strain["atom_plane"].values if "atom_plane" in strain else relaxed["plane"].values
    iface = [int(p) for p in np.atleast_1d(strain.attrs["interface_planes"])]
    groups = R.atom_groups(atoms.positions, plane, iface, code, x, y, L, r["interface_depth"])
    z_range = None
    if s["ldos_z_halfwidth"] is not None:
        zc = float(np.mean([atoms.positions[plane == p, 2].mean() for p in iface]))
        z_range = (zc - float(s["ldos_z_halfwidth"]), zc + float(s["ldos_z_halfwidth"]))
    return compute(atoms, s, groups, code, found, x, y, z_range, threads, checkpoint_dir, txt, log)
